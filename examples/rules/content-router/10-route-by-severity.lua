-- Content-based routing: an event published to events/<source> as a JSON object with a
-- "severity" of "critical" or "warning" is fanned out: the original goes on to events/<source>
-- as published, and a copy goes to alerts/<severity> (QoS 1, with a user property naming where it
-- came from), so an on-call tool needs only one subscription. Anything else passes unchanged.
--   mosquitto_sub -t 'alerts/#' -v &
--   mosquitto_pub -t events/boiler -m '{"severity":"critical","msg":"pressure"}'
--     -> alerts/critical {"severity":"critical","msg":"pressure"}

local ROUTES = { critical = "alerts/critical", warning = "alerts/warning" }

return {
  match = "events/+",
  on_publish = function(msg)
    local event = tide.json.decode(msg.payload)
    local to = type(event) == "table" and ROUTES[event.severity]
    if not to then return end -- not JSON, not an object, or nothing to route: unchanged
    -- a list of tables fans out; each lists only what differs from the original
    return {
      { topic = msg.topic },
      { topic = to, qos = 1, properties = { user = { { "routed_from", msg.topic } } } },
    }
  end,
}
