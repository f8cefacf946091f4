-- Bench scenario "on_deliver": called once per subscriber for every copy of a fan-out; lets every
-- copy through unchanged unless the subscriber's client id says otherwise (it never does here).
return {
  match = "#",
  on_deliver = function(msg, client)
    if client.client_id == "blocked" then return false end
  end,
}
