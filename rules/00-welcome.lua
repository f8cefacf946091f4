-- The default rule set's first rule: harmless and useful to look at.
-- Logs each connection at debug level and has no opinion on it (nil: the broker's own
-- password and ACL files decide).
return {
  on_connect = function(conn)
    tide.log.debug("client %s connected from %s (MQTT %s)", conn.client_id,
                   tostring(conn.address), conn.protocol)
    return nil
  end,
}
