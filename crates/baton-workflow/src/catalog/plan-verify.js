export const meta = {
  name: 'plan-verify',
  description: 'Draft a step-by-step plan for a change, check every step against the actual code in parallel, and revise the plan with what the checks found.',
  whenToUse: 'Before a migration or refactor, to catch wrong assumptions early.',
  phases: [{ title: 'Plan' }, { title: 'Verify' }, { title: 'Revise' }],
}

const goal = (args && args.goal) || (typeof args === 'string' ? args : null)
if (!goal) throw new Error('plan-verify needs a goal: args = {"goal": "..."} or a string')

phase('Plan')
const plan = await agent(
  `Read the relevant code and draft a concrete plan to: ${goal}. Each step names the files it touches and the assumption it relies on.`,
  { label: 'draft plan', schema: { type: 'object', required: ['steps'], properties: { steps: { type: 'array', items: {
    type: 'object', required: ['step', 'files', 'assumption'],
    properties: { step: { type: 'string' }, files: { type: 'array', items: { type: 'string' } }, assumption: { type: 'string' } } } } } } })
if (!plan) throw new Error('the planning agent failed')

phase('Verify')
const checks = await parallel(plan.steps.map((s, i) => () => agent(
  `Verify one step of a plan against the code. Is its assumption true? Does it miss files or callers? ` +
  `Answer holds true/false, what is wrong if anything, and what to change.\n\nGoal: ${goal}\nStep ${i + 1}: ${JSON.stringify(s)}`,
  { label: `step ${i + 1}`, schema: { type: 'object', required: ['holds'],
    properties: { holds: { type: 'boolean' }, problem: { type: 'string' }, fix: { type: 'string' } } } })))
const problems = checks.map((c, i) => ({ step: i + 1, ...(c || { holds: false, problem: 'the check failed' }) })).filter(c => !c.holds)
log(`${problems.length} of ${plan.steps.length} steps need changes`)

phase('Revise')
const revised = problems.length === 0 ? plan : await agent(
  `Revise this plan so every problem found is fixed. Keep steps that held.\n\nGoal: ${goal}\n\nPlan:\n` +
  JSON.stringify(plan.steps, null, 2) + `\n\nProblems:\n` + JSON.stringify(problems, null, 2),
  { label: 'revise plan', schema: { type: 'object', required: ['steps'], properties: { steps: { type: 'array', items: {
    type: 'object', required: ['step', 'files'],
    properties: { step: { type: 'string' }, files: { type: 'array', items: { type: 'string' } }, assumption: { type: 'string' } } } } } } })
return { goal, problems, plan: (revised || plan).steps }
