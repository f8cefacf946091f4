/* Subcommand entry points of the tidemq executable (the composition root). Each takes argv with
 * argv[0] being the subcommand's own name and returns the process exit status. */
#ifndef TIDE_CMD_H
#define TIDE_CMD_H

int cmd_serve(int argc, char **argv);
int cmd_passwd(int argc, char **argv); /* tidemq passwd: mosquitto_passwd-compatible */
int cmd_rules(int argc, char **argv);  /* tidemq rules check|test: the rule engine offline */

#endif
