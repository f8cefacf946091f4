-- Schema-style validation: a reading published to telemetry/<device> must be a JSON object that
-- fits SCHEMA below. A bad payload is refused with a reason: an MQTT 5 publisher using QoS 1 or 2
-- gets PUBACK/PUBREC 0x99 (payload_format_invalid) with a reason string saying what is wrong; a
-- 3.1.1 publisher is acknowledged as usual and the message dropped (QoS 0: just dropped). Good
-- readings pass unchanged, and so does an empty payload (a retained reading can be cleared).
--   mosquitto_pub -V 5 -q 1 -t telemetry/pump1 -m '{"temp":"hot","unit":"C"}'
--     -> "Warning: Publish 1 failed: Payload format invalid." and "field 'temp' must be a number"

-- field name -> what it must be. `required` fields must be present; others are checked when present.
local SCHEMA = {
  temp  = { type = "number", required = true, min = -50, max = 150 },
  unit  = { type = "string", required = true, one_of = { C = true, F = true } },
  ts    = { type = "number" },
  note  = { type = "string", max_len = 64 },
}

local function check_field(name, spec, v)
  if v == nil then
    return not spec.required or ("missing field '" .. name .. "'")
  end
  if type(v) ~= spec.type then
    return ("field '%s' must be a %s"):format(name, spec.type)
  end
  if spec.min and v < spec.min or spec.max and v > spec.max then
    return ("field '%s' must be between %s and %s"):format(name, spec.min, spec.max)
  end
  if spec.one_of and not spec.one_of[v] then
    return ("field '%s' has an unexpected value"):format(name)
  end
  if spec.max_len and #v > spec.max_len then
    return ("field '%s' is longer than %d bytes"):format(name, spec.max_len)
  end
  return true
end

-- Returns nil when the document fits, or the first problem found (fields in a fixed order, so
-- the same payload always gets the same answer).
local FIELDS = {}
for name in pairs(SCHEMA) do FIELDS[#FIELDS + 1] = name end
table.sort(FIELDS)

local function problem(doc)
  if type(doc) ~= "table" or getmetatable(doc) == tide.json.array_mt then
    return "payload must be a JSON object"
  end
  for _, name in ipairs(FIELDS) do
    local ok = check_field(name, SCHEMA[name], doc[name])
    if ok ~= true then return ok end
  end
  for name in pairs(doc) do
    if not SCHEMA[name] then return ("unknown field '%s'"):format(tostring(name)) end
  end
end

return {
  match = "telemetry/+",
  on_publish = function(msg)
    if msg.payload == "" then return end   -- an empty retained message clears the topic
    local doc, err = tide.json.decode(msg.payload)
    local why = doc == nil and ("payload is not JSON: " .. tostring(err)) or problem(doc)
    if why then
      return false, "payload_format_invalid", why
    end
  end,
}
