-- Per-client rate limit with tide.store: each client may publish LIMIT messages per WINDOW
-- seconds (a fixed window: the counter key is created with a TTL of WINDOW and counts until it
-- expires). Past the limit a message is refused: an MQTT 5 publisher using QoS 1 or 2 gets
-- PUBACK/PUBREC 0x97 (quota_exceeded) with a reason string; QoS 0 and 3.1.1 messages are
-- acknowledged as usual and dropped. The broker's own messages (tide.publish) are not limited.
--   for i in $(seq 8); do mosquitto_pub -V 5 -q 1 -i meter1 -t meters/1 -m $i; done
--     -> the 6th to 8th print "Warning: Publish 1 failed: Quota exceeded."

local LIMIT = 5    -- messages ...
local WINDOW = 2   -- ... per this many seconds

return {
  -- every topic a client publishes to counts
  on_publish = function(msg, client)
    if not client then return end
    -- Keyed by client id; with a password file, key by client.username to limit an account
    -- across all its connections.
    local key = "rate:" .. client.client_id
    local n, err = tide.store.incr(key, 1, WINDOW)
    if not n then
      tide.log.warn("rate limit not applied to %s: %s", client.client_id, err)
      return -- the store is full: let the message through rather than refuse everyone
    end
    if n == LIMIT + 1 then -- log once per window, not for every refused message
      tide.log.warn("client %s is over %d messages per %g s", client.client_id, LIMIT, WINDOW)
    end
    if n > LIMIT then
      return false, "quota_exceeded", ("at most %d messages per %g s"):format(LIMIT, WINDOW)
    end
  end,
}
