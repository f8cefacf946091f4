-- Devices that speak MessagePack publish to devices/<id>/msgpack; this rule decodes each message
-- and passes it on as JSON on devices/<id>/json, marked as UTF-8 JSON (MQTT 5 content type and
-- payload format indicator), so dashboards and other JSON consumers need no msgpack decoder.
-- A payload that is not valid msgpack is refused (v5 QoS 1/2: PUBACK/PUBREC 0x99 with a reason
-- string). msgpack byte strings (bin) that are not UTF-8 text become {"base64": "..."} objects,
-- since JSON strings must be text.
--   mosquitto_sub -t 'devices/+/json' -v &
--   printf '\x82\xa2id\xa2k1\xa4temp\xcb\x40\x35\x80\x00\x00\x00\x00\x00' |
--     mosquitto_pub -t devices/k1/msgpack -s      -> devices/k1/json {"id":"k1","temp":21.5}

-- True if s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 1, 0x80, 0xBF -- lo/hi bound the second byte
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c == 0xE0 then len, lo = 3, 0xA0
    elseif c == 0xED then len, hi = 3, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then len = 3
    elseif c == 0xF0 then len, lo = 4, 0x90
    elseif c == 0xF4 then len, hi = 4, 0x8F
    elseif c >= 0xF1 and c <= 0xF3 then len = 4
    else return false end
    if len > 1 then
      local b = s:byte(i + 1)
      if not b or b < lo or b > hi then return false end
      for k = i + 2, i + len - 1 do
        b = s:byte(k)
        if not b or b < 0x80 or b > 0xBF then return false end
      end
    end
    i = i + len
  end
  return true
end

-- A copy of v that JSON can carry: non-text strings become {base64 = ...}; keys become strings.
local function jsonable(v, depth)
  if depth > 32 then error("nested too deeply") end
  if type(v) == "string" then
    return is_utf8(v) and v or { base64 = tide.crypto.b64encode(v) }
  elseif type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    local key = k
    if type(k) ~= "number" then key = tostring(k) end
    out[key] = jsonable(x, depth + 1)
  end
  return setmetatable(out, getmetatable(v)) -- keeps tide.json.array_mt where a decoder set it
end

return {
  match = "devices/+/msgpack",
  on_publish = function(msg)
    if msg.payload == "" then return { topic = msg.topic:gsub("msgpack$", "json") } end
    local v, err = tide.msgpack.decode(msg.payload)
    if v == nil then
      return false, "payload_format_invalid", "not msgpack: " .. tostring(err)
    end
    local ok, json = pcall(function() return tide.json.encode(jsonable(v, 0)) end)
    if not ok or not json then
      return false, "payload_format_invalid", "cannot be JSON: " .. tostring(json)
    end
    return {
      topic = msg.topic:gsub("msgpack$", "json"),
      payload = json,
      properties = { content_type = "application/json", payload_format = 1 },
    }
  end,
}
