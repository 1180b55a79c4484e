-- Health of a cuerator custom resource, read from the status every cuerator
-- kind shares: observedGeneration and the Ready, Reconciling and Stalled
-- conditions, with kstatus semantics; Suspended while the CR is suspended. Argo CD runs custom health scripts
-- without Lua's string library: only concatenation is used here.
local waiting = {status = "Progressing", message = "waiting for the operator"}
if obj.status == nil then
  return waiting
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end
local suspended = conditions["Suspended"]
if suspended ~= nil and suspended.status == "True" then
  return {status = "Suspended", message = suspended.message}
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  return {status = "Progressing", message = "waiting for the operator to observe generation " .. generation}
end
local stalled, ready, reconciling = conditions["Stalled"], conditions["Ready"], conditions["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = stalled.message}
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message}
end
if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = reconciling.message}
end
if ready ~= nil then
  return {status = "Progressing", message = ready.message}
end
return waiting
