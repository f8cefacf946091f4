-- Bench scenario "reads fields": an on_publish that looks at the message and its publisher the
-- way an ACL or routing rule does (topic, QoS, payload size, client id and username) and lets
-- everything through. Its cost is the engine's price per message for a rule that reads what it
-- needs: only the fields a hook reads are built (see README, What a rule costs).
return {
  match = "#",
  on_publish = function(msg, client)
    if msg.topic == "blocked" or msg.qos > 1 or #msg.payload > 65536 then return false end
    if client.username == "blocked" or client.client_id == "" then return false end
  end,
}
