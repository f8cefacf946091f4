-- An access-control list written as PCRE2 patterns (tide.re). Each client class is recognised by
-- its client id; its id's captures fill ${name} slots in the topic patterns, so each sensor may
-- publish only its own readings and read only its own commands:
--   sensor-<6 hex digits>  publishes sensors/<hex>/temperature|humidity, subscribes commands/<hex>
--   dashboard-<name>       publishes commands/<6 hex digits>, subscribes sensors/... (any level)
-- Any other client id is refused at CONNECT (MQTT 5: 0x85 client_identifier_not_valid with a
-- reason string; 3.1.1: CONNACK 2). A publish outside the class's pattern is refused (MQTT 5
-- QoS 1/2: PUBACK 0x87 not_authorized; 3.1.1 and QoS 0: acknowledged and dropped); a subscribe is
-- refused per filter (SUBACK 0x87, 3.1.1: 0x80). Allowed actions answer nil ("no objection"), so a
-- password_file / acl_file, if configured, still has the last word.
--   mosquitto_pub -i sensor-00beef -t sensors/00beef/temperature -m 21    (allowed)
--   mosquitto_pub -i sensor-00beef -t sensors/c0ffee/temperature -m 21    (dropped; v5 QoS 1: 0x87)
--   mosquitto_pub -i laptop -t x -m 1       -> "Connection error: Connection Refused: identifier rejected."

local CLASSES = {
  { name = "sensor",
    client = [[^sensor-(?<id>[0-9a-f]{6})$]],
    publish = [[^sensors/${id}/(temperature|humidity)$]],
    subscribe = [[^commands/${id}$]] },
  { name = "dashboard",
    client = [[^dashboard-[a-z0-9]{1,32}$]],
    publish = [[^commands/[0-9a-f]{6}$]],
    -- filters too: "+" and "#" are literal characters to the regex
    subscribe = [[^sensors/([0-9a-f]{6}|\+|#)(/(temperature|humidity|\+|#))?$]] },
}

-- The class of a client id and the pattern slots its captures fill, or nil.
local function classify(client_id)
  for _, class in ipairs(CLASSES) do
    local m = tide.re.match(client_id, class.client)
    if m then return class, m end
  end
end

-- pattern with each ${name} replaced by that capture (captures are [0-9a-f] only: nothing to
-- escape). PCRE2 compiles each distinct result once and caches it.
local function fill(pattern, captures)
  return (pattern:gsub("%${(%w+)}", function(name) return captures[name] or "(?!)" end))
end

local function allowed(client, what, subject)
  local class, captures = classify(client.client_id)
  return class and class[what] and tide.re.test(subject, fill(class[what], captures))
end

return {
  on_connect = function(conn)
    if not classify(conn.client_id) then
      return false, "client_identifier_not_valid",
             "client id must be sensor-<6 hex digits> or dashboard-<name>"
    end
  end,

  on_subscribe = function(sub, client)
    if not allowed(client, "subscribe", sub.filter) then
      return false, "not_authorized", "may not subscribe to " .. sub.filter
    end
  end,

  on_publish = function(msg, client)
    if client and not allowed(client, "publish", msg.topic) then
      return false, "not_authorized", "may not publish to " .. msg.topic
    end
  end,
}
