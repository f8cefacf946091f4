-- Bench scenario "JSON transform": decode the publisher's JSON reading (tidemq-bench --json-payload),
-- convert its Celsius field to Fahrenheit, encode it again. The bench's fields t/p/s (timestamp,
-- publisher, sequence) pass through, so the subscriber can still time and count the copies.
local json = tide.json
return {
  match = "#",
  on_publish = function(msg, client)
    local v = json.decode(msg.payload)
    if type(v) ~= "table" or type(v.c) ~= "number" then return false end
    v.f = v.c * 9 / 5 + 32
    v.c = nil
    return { payload = json.encode(v) }
  end,
}
