-- An example transform: a JSON object published under tidemq/demo/ gets a "seen_at" field
-- (wall clock, seconds); any other payload passes unchanged. Try:
--   mosquitto_pub -t tidemq/demo/x -m '{"v":1}'   and subscribe to tidemq/demo/#
return {
  match = "tidemq/demo/#",
  on_publish = function(msg)
    local v = tide.json.decode(msg.payload)
    if type(v) ~= "table" or getmetatable(v) == tide.json.array_mt then
      return nil
    end
    v.seen_at = math.floor(tide.now())
    return { payload = tide.json.encode(v) }
  end,
}
