-- Bench scenario "no match": a rule on another part of the topic tree. The C-side trie of match
-- filters keeps the bench's messages out of Lua, so this should cost next to nothing.
return {
  match = { "factory/+/alarms", "$SYS/broker/clients/#" },
  on_publish = function(msg, client)
    return false
  end,
  on_deliver = function(msg, client)
    return false
  end,
}
