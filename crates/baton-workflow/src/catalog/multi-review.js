export const meta = {
  name: 'multi-review',
  description: 'Review code through several independent lenses (correctness, security, performance, maintainability), then verify and rank what they found.',
  whenToUse: 'Before merging a change or when inheriting unfamiliar code.',
  phases: [{ title: 'Scope' }, { title: 'Review' }, { title: 'Verify' }, { title: 'Report' }],
}

const target = (args && (args.target || args.path)) || (typeof args === 'string' ? args : '.')
const lenses = (args && args.lenses) || [
  { name: 'correctness', ask: 'logic errors, wrong edge cases, broken error handling, races' },
  { name: 'security', ask: 'injection, path traversal, secrets, authz gaps, unsafe deserialization' },
  { name: 'performance', ask: 'needless work in hot paths, N+1 queries, unbounded growth, blocking calls in async code' },
  { name: 'maintainability', ask: 'duplicated logic, misleading names, dead code, missing tests for risky code' },
]

phase('Scope')
const scope = await agent(
  `List the source files a reviewer should read for: ${target}. Prefer files with logic over generated or vendored ones. At most 40.`,
  { label: 'scope', schema: { type: 'object', required: ['files'], properties: { files: { type: 'array', items: { type: 'string' }, maxItems: 40 } } } })
if (!scope || scope.files.length === 0) return { target, issues: [], note: 'nothing to review' }
log(`Reviewing ${scope.files.length} files through ${lenses.length} lenses`)

phase('Review')
const issueSchema = { type: 'object', required: ['issues'], properties: { issues: { type: 'array', items: {
  type: 'object', required: ['file', 'line', 'title', 'why'],
  properties: { file: { type: 'string' }, line: { type: 'integer' }, title: { type: 'string' }, why: { type: 'string' },
                severity: { type: 'string', enum: ['critical', 'high', 'medium', 'low'] } } } } } }
const reviews = await parallel(lenses.map(l => () => agent(
  `Review these files only for ${l.name}: ${l.ask}. Report real problems with file and line; no style nits.\n\n` +
  scope.files.join('\n'),
  { label: l.name, schema: issueSchema })))
const all = reviews.flatMap((r, i) => (r ? r.issues.map(x => ({ ...x, lens: lenses[i].name })) : []))

phase('Verify')
const verified = await pipeline(all, issue => agent(
  `Check this reported issue against the code. Is it real? Answer with confirmed true/false and a one-line reason.\n\n` +
  JSON.stringify(issue),
  { label: `${issue.file}:${issue.line}`, schema: { type: 'object', required: ['confirmed'],
    properties: { confirmed: { type: 'boolean' }, reason: { type: 'string' } } } }),
  (v, issue) => (v && v.confirmed ? { ...issue, reason: v.reason } : null))

phase('Report')
const order = { critical: 0, high: 1, medium: 2, low: 3 }
const issues = verified.filter(Boolean).sort((a, b) => (order[a.severity] ?? 4) - (order[b.severity] ?? 4))
log(`${issues.length} of ${all.length} reported issues confirmed`)
return { target, files: scope.files.length, reported: all.length, issues }
