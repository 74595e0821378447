export const meta = {
  name: 'bounty-hunt',
  description: 'Map the attack surface, dig into each hotspot in parallel, and keep only vulnerabilities an adversarial reviewer can reproduce step by step.',
  whenToUse: 'A security pass over a service or library before release.',
  phases: [{ title: 'Map' }, { title: 'Dig' }, { title: 'Challenge' }, { title: 'Rank' }],
}

const scope = (args && args.scope) || (typeof args === 'string' ? args : 'the whole repository')

phase('Map')
const surface = await agent(
  `Map the attack surface of ${scope}: entry points that take untrusted input (HTTP handlers, CLI args, file ` +
  `parsers, deserializers, shell or SQL construction, auth checks). List the hotspots most likely to hide a vulnerability.`,
  { label: 'map', schema: { type: 'object', required: ['hotspots'], properties: { hotspots: { type: 'array', maxItems: 20, items: {
    type: 'object', required: ['where', 'input', 'risk'],
    properties: { where: { type: 'string' }, input: { type: 'string' }, risk: { type: 'string' } } } } } } })
if (!surface) throw new Error('the mapping agent failed')

phase('Dig')
const leads = await parallel(surface.hotspots.map(h => () => agent(
  `Dig into this hotspot and look for an exploitable vulnerability. Give the vulnerable code (file:line), ` +
  `the attacker-controlled input and concrete reproduction steps, or say there is none.\n\n${JSON.stringify(h)}`,
  { label: h.where, schema: { type: 'object', required: ['vulnerable'], properties: {
    vulnerable: { type: 'boolean' }, title: { type: 'string' }, location: { type: 'string' },
    reproduction: { type: 'string' }, impact: { type: 'string' } } } })))
const candidates = leads.filter(l => l && l.vulnerable)

phase('Challenge')
const challenged = await pipeline(candidates, c => agent(
  `You are the maintainer defending this code. Try to show the reported vulnerability is not exploitable ` +
  `(input validated elsewhere, unreachable, needs privileges the attacker lacks). Decide whether it stands.\n\n${JSON.stringify(c)}`,
  { label: `challenge: ${c.title || c.location}`, schema: { type: 'object', required: ['stands'], properties: {
    stands: { type: 'boolean' }, reason: { type: 'string' }, severity: { type: 'string', enum: ['critical', 'high', 'medium', 'low'] } } } }),
  (v, c) => (v && v.stands ? { ...c, severity: v.severity || 'medium', defence_considered: v.reason } : null))

phase('Rank')
const order = { critical: 0, high: 1, medium: 2, low: 3 }
const findings = challenged.filter(Boolean).sort((a, b) => order[a.severity] - order[b.severity])
log(`${findings.length} of ${candidates.length} candidate vulnerabilities stand`)
return { scope, hotspots: surface.hotspots.length, findings }
