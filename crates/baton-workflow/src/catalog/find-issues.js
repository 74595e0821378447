export const meta = {
  name: 'find-issues',
  description: 'Survey a repository module by module, hunt for bugs in each, and keep only the issues an independent check confirms.',
  whenToUse: 'Looking for real bugs across a codebase rather than reviewing one change.',
  phases: [{ title: 'Survey' }, { title: 'Hunt' }, { title: 'Confirm' }],
}

const area = (args && args.area) || (typeof args === 'string' ? args : 'the whole repository')
const maxModules = Math.min((args && args.modules) || 12, 50)

phase('Survey')
const survey = await agent(
  `Survey ${area}. Split it into at most ${maxModules} modules (a directory or a group of related files) ` +
  `that can each be examined on its own, most bug-prone first.`,
  { label: 'survey', schema: { type: 'object', required: ['modules'], properties: { modules: { type: 'array', items: {
    type: 'object', required: ['name', 'paths'],
    properties: { name: { type: 'string' }, paths: { type: 'array', items: { type: 'string' } } } } } } } })
if (!survey) throw new Error('the survey agent failed')

phase('Hunt')
const found = await pipeline(survey.modules.slice(0, maxModules),
  m => agent(
    `Hunt for bugs in module "${m.name}" (${m.paths.join(', ')}): crashes, wrong results, resource leaks, ` +
    `unhandled errors, concurrency bugs. For each give file, line, what goes wrong and how to trigger it.`,
    { label: m.name, phase: 'Hunt', schema: { type: 'object', required: ['bugs'], properties: { bugs: { type: 'array', items: {
      type: 'object', required: ['file', 'line', 'summary', 'trigger'],
      properties: { file: { type: 'string' }, line: { type: 'integer' }, summary: { type: 'string' }, trigger: { type: 'string' } } } } } } }),
  (hunt, m) => parallel((hunt ? hunt.bugs : []).map(bug => () => agent(
    `Independently confirm or reject this bug report by reading the code. Be strict: confirm only if the trigger really leads to the failure.\n\n` +
    JSON.stringify(bug),
    { label: `${bug.file}:${bug.line}`, phase: 'Confirm', schema: { type: 'object', required: ['confirmed'],
      properties: { confirmed: { type: 'boolean' }, reason: { type: 'string' } } } })
    .then(v => (v && v.confirmed ? { module: m.name, ...bug, reason: v.reason } : null)))))

const issues = found.filter(Boolean).flat().filter(Boolean)
log(`${issues.length} confirmed issues`)
return { area, modules: survey.modules.length, issues }
