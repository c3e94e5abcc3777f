import { SwarmdError } from '../types/errors.js'
import type { ExecutorTask } from './executor.js'

/**
 * The values Docker's service templates can name (swarmkit's template
 * Context): `{{.Service.Name}}`, `{{.Task.Slot}}`, `{{.Node.Hostname}}`, …
 */
export interface TemplateContext {
  Service: { ID: string; Name: string }
  Node: { ID: string; Hostname: string; Platform: { OS: string; Architecture: string } }
  Task: { ID: string; Name: string; Slot: string }
}

export type TemplateTask = Pick<ExecutorTask, 'id' | 'serviceId' | 'serviceName' | 'slot' | 'nodeId' | 'nodeHostname'>

/**
 * As swarmkit builds it: a task without a slot (global service) uses the
 * node ID both as its slot and in its name, `service.slot.taskid`.
 */
export function templateContext(t: TemplateTask, platform: { OS: string; Architecture: string } = { OS: '', Architecture: '' }): TemplateContext {
  const slot = t.slot !== 0 ? String(t.slot) : t.nodeId
  return {
    Service: { ID: t.serviceId, Name: t.serviceName },
    Node: { ID: t.nodeId, Hostname: t.nodeHostname, Platform: { ...platform } },
    Task: { ID: t.id, Name: `${t.serviceName}.${slot}.${t.id}`, Slot: slot },
  }
}

const FIELD_PATH = /^(\.[A-Za-z_][A-Za-z0-9_]*)+$/

/**
 * Expands `{{.A.B}}` placeholders as Go's text/template would for swarmkit's
 * context, including `{{- x -}}` whitespace trimming. Anything Go would fail
 * on (an unknown field, an unclosed action) throws, so the task is rejected
 * instead of starting with a half-expanded value. Functions and pipelines
 * are not supported and also throw.
 */
export function expandPlaceholders(text: string, ctx: TemplateContext): string {
  let out = ''
  let pos = 0
  for (;;) {
    const open = text.indexOf('{{', pos)
    if (open < 0) return out + text.slice(pos)
    const close = text.indexOf('}}', open + 2)
    if (close < 0) throw templateError(`unclosed action in ${JSON.stringify(text)}`)
    let body = text.slice(open + 2, close)
    let before = text.slice(pos, open)
    pos = close + 2
    // Go's trim markers need a space after `{{-` and before `-}}` (else `-3` is a number).
    if (/^-[ \t\r\n]/.test(body)) {
      before = before.replace(/[ \t\r\n]+$/, '')
      body = body.slice(1)
    }
    if (/[ \t\r\n]-$/.test(body)) {
      body = body.slice(0, -1)
      while (pos < text.length && ' \t\r\n'.includes(text[pos] ?? '')) pos++
    }
    out += before + resolveField(body.trim(), ctx)
  }
}

function resolveField(action: string, ctx: TemplateContext): string {
  if (/^\/\*[\s\S]*\*\/$/.test(action)) return ''
  if (!FIELD_PATH.test(action)) throw templateError(`unsupported action {{${action}}}: only fields such as {{.Task.Slot}} are available`)
  let value: unknown = ctx
  let type = 'Context'
  for (const name of action.slice(1).split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, name)) {
      throw templateError(`executing "expansion" at <${action}>: can't evaluate field ${name} in type ${type}`)
    }
    value = (value as Record<string, unknown>)[name]
    type = name
  }
  if (typeof value !== 'string') throw templateError(`executing "expansion" at <${action}>: ${type} is not a single value`)
  return value
}

function templateError(detail: string): SwarmdError {
  return new SwarmdError('E_TEMPLATE', `template: expansion: ${detail}`)
}
