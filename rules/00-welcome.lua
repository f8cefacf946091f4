-- The default rule set's first rule: harmless and useful to look at.
-- init runs when the rule is loaded (at start, and again when this file changes): it says in the
-- broker log that rules are running and how to see 10-demo.lua at work.
-- on_connect logs each connection at debug level (shown with -v) and has no opinion on it (nil:
-- the broker's own password and ACL files decide).
return {
  init = function()
    tide.log.info("rules are running; try: mosquitto_sub -t 'tidemq/demo/#' -v & "
                  .. "mosquitto_pub -t tidemq/demo/hello -m '{\"v\":1}'")
  end,
  on_connect = function(conn)
    tide.log.debug("client %s connected from %s (MQTT %s)", conn.client_id,
                   tostring(conn.address), conn.protocol)
    return nil
  end,
}
