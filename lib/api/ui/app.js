// The cluster page: draws what /ui/events sends (the manager's view of the
// swarm) each time it changes. Read-only; plain DOM, no build step.
'use strict'

const $ = id => document.getElementById(id)

/** An element with a class, text and data attributes; text always as text, never as markup. */
function el(tag, cls, text, data) {
  const e = document.createElement(tag)
  if (cls) e.className = cls
  if (text !== undefined) e.textContent = text
  for (const [k, v] of Object.entries(data || {})) e.dataset[k] = v
  return e
}

const cap = s => s.charAt(0).toUpperCase() + s.slice(1)

/** A stable hue per service, so a service's cards share a stripe across the nodes. */
function hue(name) {
  let h = 0
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360
  return h
}

function taskCard(t) {
  const card = el('div', `task state-${t.state}`, undefined, { taskName: t.name, taskId: t.id, state: t.state })
  card.style.borderLeftColor = `hsl(${hue(t.service)} 60% 45%)`
  card.append(el('div', 'task-name', t.name), el('div', 'task-meta', `${cap(t.state)} · ${t.id.slice(0, 12)}`))
  if (t.err) card.append(el('div', 'task-err', t.err))
  return card
}

/** A column: its head (a name, badges), then its task cards. */
function column(cls, data, name, badges, tasks) {
  const col = el('div', cls, undefined, data)
  const head = el('div', 'node-head')
  head.append(el('div', 'node-name', name))
  const row = el('div', 'badges')
  for (const [c, text, field] of badges) row.append(el('span', `badge ${c}`, text, { field }))
  head.append(row)
  const list = el('div', 'tasks')
  for (const t of tasks) list.append(taskCard(t))
  if (!tasks.length) list.append(el('div', 'empty', 'no tasks'))
  col.append(head, list)
  return col
}

function nodeColumn(n, tasks) {
  const badges = [
    [`status-${n.state}`, cap(n.state), 'status'],
    [`availability-${n.availability}`, cap(n.availability), 'availability'],
    [n.managerStatus === 'leader' ? 'leader' : '', n.managerStatus ? cap(n.managerStatus) : 'Worker', 'manager'],
  ]
  return column(`node state-${n.state}`, { nodeId: n.id, hostname: n.hostname, state: n.state }, n.hostname, badges, tasks)
}

function render(v) {
  $('problem').hidden = !v.error
  if (v.error) {
    $('problem').textContent = v.error
    return
  }
  const ready = v.nodes.filter(n => n.state === 'ready').length
  const self = v.nodes.find(n => n.id === v.self.nodeId)
  $('summary').textContent = `${v.nodes.length} nodes (${ready} ready) · ${v.services.length} services · ${v.tasks.length} tasks · shown by ${self ? self.hostname : 'a manager'}`
  const rows = $('services').tBodies[0]
  rows.replaceChildren(
    ...v.services.map(s => {
      const tr = el('tr', '', undefined, { service: s.name })
      // A job is short of nothing once its tasks complete: Docker's `0/1 (1/1 completed)`.
      const done = s.completed ? ` (${s.completed.done}/${s.completed.of} completed)` : ''
      const replicas = el('td', `replicas${s.running < s.desired && !s.completed ? ' short' : ''}`, `${s.running}/${s.desired}${done}`)
      tr.append(el('td', '', s.name), el('td', '', s.mode), replicas, el('td', '', s.ports.join(', ') || '-'), el('td', '', s.image))
      return tr
    }),
  )
  const byNode = new Map()
  for (const t of v.tasks) byNode.set(t.node || '', [...(byNode.get(t.node || '') || []), t])
  const cols = v.nodes.map(n => nodeColumn(n, byNode.get(n.id) || []))
  const waiting = byNode.get('')
  if (waiting) cols.push(column('node unassigned', { unassigned: 'true' }, 'Not yet assigned', [], waiting))
  $('nodes').replaceChildren(...cols)
}

function connect() {
  const live = $('live')
  const events = new EventSource('/ui/events')
  events.onopen = () => {
    live.textContent = 'live'
    live.classList.remove('off')
  }
  events.onmessage = m => {
    live.textContent = 'live'
    live.classList.remove('off')
    render(JSON.parse(m.data))
  }
  // EventSource tries again by itself (every 2 s, as the server asks).
  events.onerror = () => {
    live.textContent = 'disconnected'
    live.classList.add('off')
  }
}

connect()
