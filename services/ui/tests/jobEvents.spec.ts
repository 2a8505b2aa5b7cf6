import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { useJobEvents } from '../src/jobEvents'
import { session } from '../src/session'

/** EventSource as the UI uses it: named events, onerror, close. */
class FakeEventSource {
  static opened: FakeEventSource[] = []
  listeners: Record<string, Array<(e: MessageEvent) => void>> = {}
  onerror: (() => void) | null = null
  closed = false
  constructor(public url: string) {
    FakeEventSource.opened.push(this)
  }
  addEventListener(name: string, fn: (e: MessageEvent) => void) {
    ;(this.listeners[name] ??= []).push(fn)
  }
  emit(name: string, data: unknown) {
    for (const fn of this.listeners[name] ?? []) fn(new MessageEvent(name, { data: JSON.stringify(data) }))
  }
  close() {
    this.closed = true
  }
}

const job = (status: string) => ({ job_id: 'j1', media_id: 'm1', status, tasks: [{ name: 'ocr', status }] })

beforeEach(() => {
  FakeEventSource.opened = []
  vi.useFakeTimers()
  vi.stubGlobal('EventSource', FakeEventSource)
  let n = 0
  vi.stubGlobal('fetch', async (request: Request) => {
    expect(new URL(request.url).pathname).toBe('/api/v1/jobs/j1/events/token')
    expect(request.headers.get('Authorization')).toBe('Bearer A')
    n += 1
    return new Response(JSON.stringify({ token: `t${n}`, expires_in: 120, url: `/v1/jobs/j1/events?token=t${n}` }), {
      status: 200, headers: { 'Content-Type': 'application/json' },
    })
  })
  session.store({ access_token: 'A', refresh_token: 'R', expires_in: 3600, must_change_password: false })
})
afterEach(() => {
  vi.useRealTimers()
  vi.unstubAllGlobals()
  session.clear()
})

describe('job events', () => {
  it('opens the stream with a link token, follows progress, reopens with a new token, stops when done', async () => {
    const finished = vi.fn()
    let events!: ReturnType<typeof useJobEvents>
    mount(defineComponent({ setup: () => ((events = useJobEvents(finished)), () => h('div')) }))
    await events.follow('j1')
    await flushPromises()
    const first = FakeEventSource.opened[0]
    expect(first.url).toBe('/api/v1/jobs/j1/events?token=t1')

    first.emit('job', job('running'))
    first.emit('progress', { job_id: 'j1', task: 'ocr', progress: 0.4, message: 'lines' })
    expect(events.job.value?.status).toBe('running')
    expect(events.progress.value.ocr).toEqual({ fraction: 0.4, message: 'lines' })

    first.onerror?.() // dropped (or its token expired): a new token after 2 s
    expect(first.closed).toBe(true)
    await vi.advanceTimersByTimeAsync(2000)
    await flushPromises()
    const second = FakeEventSource.opened[1]
    expect(second.url).toBe('/api/v1/jobs/j1/events?token=t2')

    second.emit('job', job('succeeded'))
    expect(second.closed).toBe(true)
    expect(finished).toHaveBeenCalledWith(job('succeeded'))
    second.onerror?.() // the server ends the stream: nothing reopens
    await vi.advanceTimersByTimeAsync(5000)
    expect(FakeEventSource.opened).toHaveLength(2)
  })
})
