-- RULES-API's first example: Celsius readings published to sensors/<id>/celsius are republished
-- as Fahrenheit on sensors/<id>/fahrenheit; a payload that is not a number is dropped.
--   mosquitto_sub -t 'sensors/+/fahrenheit' -v &
--   mosquitto_pub -t sensors/kitchen/celsius -m 21.5      -> sensors/kitchen/fahrenheit 70.7
return {
  match = "sensors/+/celsius",           -- a filter or a list of filters; on_publish/on_deliver see only these
  on_publish = function(msg, client)
    if msg.payload == "" then return end   -- let an empty retained message clear the topic
    local c = tonumber(msg.payload)
    if not c then return false end        -- drop it
    return { topic = msg.topic:gsub("celsius$", "fahrenheit"), payload = tostring(c * 9 / 5 + 32) }
  end,
}
