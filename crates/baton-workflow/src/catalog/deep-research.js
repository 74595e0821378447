export const meta = {
  name: 'deep-research',
  description: 'Research a question from several angles in parallel, cross-check every finding adversarially, and write a cited synthesis.',
  whenToUse: 'Open questions about a codebase or a topic where one pass would miss things or get them wrong.',
  phases: [{ title: 'Plan' }, { title: 'Research' }, { title: 'Cross-check' }, { title: 'Synthesize' }],
}

const question = typeof args === 'string' ? args : args && args.question
if (!question) throw new Error('deep-research needs a question: args = {"question": "..."} or a string')
const breadth = Math.min(Math.max((args && args.angles) || 4, 2), 8)

phase('Plan')
const plan = await agent(
  `Break the question below into ${breadth} distinct research angles that together cover it and overlap little. ` +
  `For each give a short title and what exactly to look for.\n\nQuestion: ${question}`,
  { label: 'plan', schema: {
    type: 'object', required: ['angles'],
    properties: { angles: { type: 'array', minItems: 1, maxItems: breadth, items: {
      type: 'object', required: ['title', 'focus'],
      properties: { title: { type: 'string' }, focus: { type: 'string' } } } } } } })
if (!plan) throw new Error('the planning agent failed')
log(`Researching ${plan.angles.length} angles`)

phase('Research')
const findingSchema = {
  type: 'object', required: ['findings'],
  properties: { findings: { type: 'array', items: {
    type: 'object', required: ['claim', 'evidence'],
    properties: { claim: { type: 'string' }, evidence: { type: 'string', description: 'file:line or source that shows it' },
                  confidence: { type: 'string', enum: ['high', 'medium', 'low'] } } } } } }
const findings = await parallel(plan.angles.map(a => () => agent(
  `Research one angle of a question. Look at the workspace (files, code, docs) and report findings. ` +
  `Every claim needs concrete evidence: a file path with line numbers, or a quoted source. Do not guess.\n\n` +
  `Question: ${question}\nAngle: ${a.title} — ${a.focus}`,
  { label: a.title, schema: findingSchema })))

phase('Cross-check')
const checked = await parallel(findings.map((f, i) => () => {
  if (!f || f.findings.length === 0) return null
  return agent(
    `You are a skeptical reviewer. For each claim below, open the cited evidence and decide whether it really ` +
    `supports the claim. Mark each as supported, refuted or uncertain, with a one-line reason.\n\n` +
    JSON.stringify(f.findings, null, 2),
    { label: `check: ${plan.angles[i].title}`, schema: {
      type: 'object', required: ['verdicts'],
      properties: { verdicts: { type: 'array', items: {
        type: 'object', required: ['claim', 'verdict'],
        properties: { claim: { type: 'string' }, verdict: { type: 'string', enum: ['supported', 'refuted', 'uncertain'] },
                      reason: { type: 'string' }, evidence: { type: 'string' } } } } } } })
}))
const supported = checked.filter(Boolean).flatMap(c => c.verdicts.filter(v => v.verdict === 'supported'))
log(`${supported.length} claims survived cross-checking`)

phase('Synthesize')
const report = await agent(
  `Answer the question using only the verified claims below. Cite the evidence for each point ` +
  `(file:line). Say plainly what remains unknown.\n\nQuestion: ${question}\n\nVerified claims:\n` +
  JSON.stringify(supported, null, 2),
  { label: 'synthesis' })
return { question, angles: plan.angles.map(a => a.title), verified_claims: supported.length, report }
