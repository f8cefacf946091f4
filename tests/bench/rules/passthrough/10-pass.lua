-- Bench scenario "pass-through": an on_publish that looks at nothing and changes nothing, on all
-- of tidemq-bench's traffic. Its cost is the engine's fixed price per message.
return {
  match = "#",
  on_publish = function(msg, client)
    return nil
  end,
}
