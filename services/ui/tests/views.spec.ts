import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { session } from '../src/session'
import AskView from '../src/views/AskView.vue'
import PeopleView from '../src/views/PeopleView.vue'
import UploadView from '../src/views/UploadView.vue'
import { i18nFor, memoryRouter } from './setup'

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

/** A fetch stub answering by "METHOD /path" and recording each request's body. */
function gateway(routes: Record<string, (body: unknown) => Response>) {
  const calls: Array<{ route: string; body: unknown }> = []
  vi.stubGlobal('fetch', async (request: Request) => {
    const route = `${request.method} ${new URL(request.url).pathname.replace(/^\/api/, '')}`
    const text = request.method === 'GET' ? '' : await request.text()
    const body = text ? JSON.parse(text) : undefined
    calls.push({ route, body })
    const answer = routes[route]
    return answer ? answer(body) : json(404, { error: { code: 'not_found', message: route, details: null } })
  })
  return calls
}

beforeEach(() => session.store({ access_token: 'A', refresh_token: 'R', expires_in: 3600, must_change_password: false }))
afterEach(() => {
  vi.unstubAllGlobals()
  session.clear()
})

const person = (id: string, name: string | null, faces: number) => ({
  id, name, faces, media: faces, collection: 'faces', sample_face_id: null, created_at: '', updated_at: '',
})

describe('people', () => {
  it('names a cluster and merges the two ticked into the first', async () => {
    let people = [person('p1', null, 2), person('p2', null, 1)]
    const calls = gateway({
      'GET /v1/people': () => json(200, { data: people, count: people.length }),
      'PATCH /v1/people/p1': (b) => {
        people = [{ ...people[0], name: (b as { name: string }).name }, people[1]]
        return json(200, people[0])
      },
      'POST /v1/people/p1/merge': () => {
        people = [{ ...people[0], faces: 3, media: 3 }]
        return json(200, people[0])
      },
    })
    const view = mount(PeopleView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    expect(view.findAll('[data-testid=person]')).toHaveLength(2)
    await view.find('#name-p1').setValue('Ada Lovelace')
    await view.findAll('[data-testid=person] form')[0].trigger('submit')
    await flushPromises()
    expect(calls).toContainEqual({ route: 'PATCH /v1/people/p1', body: { name: 'Ada Lovelace' } })
    expect(view.find('[role=status]').text()).toBe('Saved: Ada Lovelace')
    const boxes = view.findAll('input[type=checkbox]')
    await boxes[0].setValue(true)
    await boxes[1].setValue(true)
    await view.find('button:not(.secondary):not(.link)').trigger('click')
    await flushPromises()
    expect(calls).toContainEqual({ route: 'POST /v1/people/p1/merge', body: { person_ids: ['p2'] } })
    expect(view.findAll('[data-testid=person]')).toHaveLength(1)
    expect(view.text()).toContain('3 faces in 3 files')
  })
})

describe('ask', () => {
  it('shows the answer and links each citation to its media', async () => {
    const calls = gateway({
      'POST /v1/ask': () =>
        json(200, {
          question: 'What should I clean?', answer: 'Your hands, with soap and water [1].', model: 'smollm2', usage: null,
          citations: [{ n: 1, media_id: 'm1', filename: 'english.png', task: 'ocr', ref: 'lines/1', text: 'Clean hands with soap and water', box: null, start: null, end: null }],
        }),
    })
    const view = mount(AskView, { global: { plugins: [i18nFor('de'), memoryRouter()] } })
    await view.find('textarea').setValue('What should I clean?')
    await view.find('form').trigger('submit')
    await flushPromises()
    expect(calls[0]).toEqual({ route: 'POST /v1/ask', body: { question: 'What should I clean?' } })
    const answer = view.find('[data-testid=answer]')
    expect(answer.text()).toContain('Your hands, with soap and water [1].')
    expect(answer.text()).toContain('Quellen')
    expect(answer.find('a').attributes('href')).toBe('/media/m1')
    expect(answer.find('li').attributes('value')).toBe('1')
  })
})

describe('drag and drop', () => {
  it('takes dropped files like picked ones', async () => {
    const fetchSpy = vi.fn()
    vi.stubGlobal('fetch', fetchSpy)
    const view = mount(UploadView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    const zone = view.find('[data-testid=dropzone]')
    await zone.trigger('dragover')
    expect(zone.classes()).toContain('dragging')
    const files = [new File(['%PDF'], 'paper.pdf', { type: 'application/pdf' }), new File(['x'], 'notes.txt', { type: 'text/plain' })]
    await zone.trigger('drop', { dataTransfer: { files } })
    expect(zone.classes()).not.toContain('dragging')
    expect(view.findAll('[data-state=refused]').map((li) => li.find('strong').text())).toEqual(['paper.pdf', 'notes.txt'])
    expect(fetchSpy).not.toHaveBeenCalled()
  })
})
