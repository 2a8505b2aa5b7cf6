import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { session } from '../src/session'
import AdminView from '../src/views/AdminView.vue'
import AskView from '../src/views/AskView.vue'
import DuplicatesView from '../src/views/DuplicatesView.vue'
import LibraryView from '../src/views/LibraryView.vue'
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

  it('shows a face picture per person and counts in proper plurals (both languages)', async () => {
    const people = [{ ...person('p1', null, 1), sample_face_id: 'f1' }]
    const pictures: string[] = []
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:face-f1', revokeObjectURL: () => undefined }))
    vi.stubGlobal('fetch', async (request: Request | string) => {
      const url = typeof request === 'string' ? request : request.url
      if (url.includes('/v1/faces/f1/thumbnail')) {
        pictures.push(url)
        return new Response(new Blob(['jpeg']), { status: 200, headers: { 'Content-Type': 'image/jpeg' } })
      }
      return json(200, { data: people, count: 1 })
    })
    const en = mount(PeopleView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    expect(en.text()).toContain('1 face in 1 file')
    expect(pictures).toEqual(['/api/v1/faces/f1/thumbnail?size=192'])
    const img = en.find('[data-testid=face-crop]')
    expect(img.attributes('src')).toBe('blob:face-f1')
    expect(img.attributes('alt')).toBe('A face of Unnamed person')
    const de = mount(PeopleView, { global: { plugins: [i18nFor('de'), memoryRouter()] } })
    await flushPromises()
    expect(de.text()).toContain('1 Gesicht in 1 Datei')
  })
})

describe('people feedback', () => {
  const face = (id: string, media: string) => ({
    face_id: id, media_id: media, filename: `${media}.jpg`, task: 'faces', ref: 'faces[0]', box: [0, 0, 1, 1],
    score: 1, t: null, collection: 'faces-dlib', cluster_id: 'p1', person: null,
  })
  it('takes a face out of a person ("not X") and splits the ticked faces off', async () => {
    let people = [{ ...person('p1', 'Ada', 3) }]
    const calls = gateway({
      'GET /v1/people': () => json(200, { data: people, count: people.length }),
      'GET /v1/people/p1/media': () =>
        json(200, { person_id: 'p1', count: 3, data: ['m1', 'm2', 'm3'].map((m, i) => ({ media_id: m, filename: `${m}.jpg`, faces: [face(`f${i + 1}`, m)] })) }),
      'POST /v1/faces/f2/not-this-person': () => {
        people = [{ ...people[0], faces: 2, media: 2 }, person('p2', null, 1)]
        return json(200, { ...face('f2', 'm2'), cluster_id: 'p2' })
      },
      'POST /v1/people/p1/split': () => json(201, person('p3', null, 1)),
    })
    const view = mount(PeopleView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    await view.find('[data-testid=person] button.link').trigger('click')
    await flushPromises()
    const rows = view.findAll('[data-testid=person-faces] li')
    expect(rows).toHaveLength(3)
    expect(rows[1].find('button').text()).toBe('Not Ada')
    await rows[1].find('button').trigger('click')
    await flushPromises()
    expect(calls.map((c) => c.route)).toContain('POST /v1/faces/f2/not-this-person')
    expect(view.find('[role=status]').text()).toBe("Moved out of Ada; it will not be put back.")
    expect(view.findAll('[data-testid=person]')).toHaveLength(2)
    const split = view.findAll('[data-testid=person-faces] li')
    await split[0].find('input[type=checkbox]').setValue(true)
    const button = view.findAll('button.secondary').find((b) => b.text().startsWith('Split off'))
    expect(button?.text()).toBe('Split off the ticked faces (1)')
    await button?.trigger('click')
    await flushPromises()
    expect(calls).toContainEqual({ route: 'POST /v1/people/p1/split', body: { face_ids: ['f1'] } })
    expect(view.find('[role=status]').text()).toBe('1 face split off into a new person.')
  })
})

describe('people feedback, unnamed', () => {
  it('offers "Not this person" on an unnamed group, in both languages', async () => {
    for (const [lang, label] of [['en', 'Not this person'], ['de', 'Nicht diese Person']] as const) {
      gateway({
        'GET /v1/people': () => json(200, { data: [person('p1', null, 1)], count: 1 }),
        'GET /v1/people/p1/media': () =>
          json(200, { person_id: 'p1', count: 1, data: [{ media_id: 'm1', filename: 'm1.jpg', faces: [{
            face_id: 'f1', media_id: 'm1', filename: 'm1.jpg', task: 'faces', ref: 'faces[0]', box: [0, 0, 1, 1],
            score: 1, t: null, collection: 'faces-dlib', cluster_id: 'p1', person: null }] }] }),
      })
      const view = mount(PeopleView, { global: { plugins: [i18nFor(lang), memoryRouter()] } })
      await flushPromises()
      await view.find('[data-testid=person] button.link').trigger('click')
      await flushPromises()
      expect(view.find('[data-testid=person-faces] li button').text()).toBe(label)
    }
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

const taskInfo = (name: string, kinds: string[], defaults: string[], state: string, message = '') => ({
  name, capability: `${name}_cap`, title: '', description: `${name} description`, media_kinds: kinds,
  default_for: defaults, depends_on: [], options_schema: {}, exports: [],
  readiness: { state, workers: state === 'no_worker' ? 0 : 1, ready_workers: state === 'ready' ? 1 : 0, message },
})

describe('upload', () => {
  it('ticks only the ready defaults, says why the others cannot run, and sends what is ticked', async () => {
    const tasks = [
      taskInfo('ocr', ['image', 'video'], ['image'], 'ready', '1 worker ready'),
      taskInfo('clip', ['image', 'video'], ['image'], 'models_missing', 'the CLIP weights are not installed; run `make models`'),
      taskInfo('transcribe', ['audio', 'video'], ['audio', 'video'], 'no_worker', 'no worker runs: jobs needing it wait in the queue'),
      taskInfo('newtask', ['image'], [], 'ready', '1 worker ready'),
    ]
    const calls = gateway({
      'GET /v1/tasks': () => json(200, { data: tasks, count: tasks.length }),
      'POST /v1/jobs': () => json(202, { job_id: 'j1', status: 'queued', skipped: {} }),
    })
    const xhr = vi.fn()
    vi.stubGlobal('XMLHttpRequest', class {
      status = 201
      responseText = JSON.stringify({ media_id: 'm1', kind: 'image', deduplicated: false })
      upload = { onprogress: null }
      onload: (() => void) | null = null
      onerror: (() => void) | null = null
      open() {}
      setRequestHeader() {}
      send(form: FormData) {
        xhr(form)
        setTimeout(() => this.onload?.(), 0)
      }
    })
    const view = mount(UploadView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    const box = (kind: string, task: string) => view.find(`[data-kind=${kind}] [data-task=${task}] input`)
    expect((box('image', 'ocr').element as HTMLInputElement).checked).toBe(true)
    expect((box('image', 'clip').element as HTMLInputElement).checked).toBe(false)
    expect(box('image', 'clip').attributes('disabled')).toBeDefined()
    expect((box('image', 'newtask').element as HTMLInputElement).checked).toBe(false) // ready, not a default
    expect(view.find('[data-kind=image] [data-task=newtask]').text()).toContain('newtask description') // no label yet
    const why = view.find('[data-testid=unavailable]').text()
    expect(why).toContain('run `make models`')
    expect(why).toContain('no worker runs')
    await view.find('[data-testid=dropzone]').trigger('drop', {
      dataTransfer: { files: [new File(['x'], 'sign.png', { type: 'image/png' })] },
    })
    await new Promise((r) => setTimeout(r, 5))
    await flushPromises()
    expect(xhr).toHaveBeenCalledTimes(1)
    expect(calls.find((c) => c.route === 'POST /v1/jobs')?.body).toEqual({ media_id: 'm1', tasks: ['ocr'] })
    expect(view.find('[data-state=started]').exists()).toBe(true)
  })
})

describe('drag and drop', () => {
  it('takes dropped files like picked ones', async () => {
    const fetchSpy = vi.fn(async () => json(200, { data: [], count: 0 }))
    vi.stubGlobal('fetch', fetchSpy)
    const view = mount(UploadView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    const zone = view.find('[data-testid=dropzone]')
    await zone.trigger('dragover')
    expect(zone.classes()).toContain('dragging')
    const files = [new File(['%PDF'], 'paper.pdf', { type: 'application/pdf' }), new File(['x'], 'notes.txt', { type: 'text/plain' })]
    await zone.trigger('drop', { dataTransfer: { files } })
    expect(zone.classes()).not.toContain('dragging')
    expect(view.findAll('[data-state=refused]').map((li) => li.find('strong').text())).toEqual(['paper.pdf', 'notes.txt'])
    expect(fetchSpy).toHaveBeenCalledTimes(1) // GET /v1/tasks only: nothing of the refused files was sent
  })
})

describe('library', () => {
  it('filters by the date and place the files record, and shows them on each tile', async () => {
    const queries: URLSearchParams[] = []
    const bus = {
      media_id: 'b'.repeat(64), kind: 'image', mime: 'image/jpeg', size_bytes: 1, width: 810, height: 1080,
      duration_s: null, streams: [], filename: 'bus.jpg', deduplicated: false, created_at: '2026-12-07T00:00:00Z',
      taken_at: '2019-03-01T13:06:33.823000', place: 'Madrid, ES',
    }
    vi.stubGlobal('fetch', async (request: Request) => {
      const url = new URL(request.url)
      if (request.method === 'GET' && url.pathname === '/api/v1/media') {
        queries.push(url.searchParams)
        const data = url.searchParams.get('place') === 'paris' ? [] : [bus]
        return json(200, { data, count: data.length, limit: 48, offset: 0 })
      }
      return json(404, { error: { code: 'not_found', message: url.pathname, details: null } })
    })
    const view = mount(LibraryView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    expect(queries[0].has('taken_from')).toBe(false)
    expect(view.find('input[name=place]').attributes('placeholder')).toBe('town, region or country code')
    expect(view.find('[data-testid=tile-facts]').text()).toBe('Madrid, ES · 2019-03-01')
    await view.find('input[name=taken_from]').setValue('2019-03-01')
    await view.find('input[name=taken_to]').setValue('2019-03-31')
    await view.find('input[name=place]').setValue('madrid')
    await flushPromises()
    const last = queries[queries.length - 1]
    expect([last.get('taken_from'), last.get('taken_to'), last.get('place'), last.get('offset')]).toEqual([
      '2019-03-01', '2019-03-31', 'madrid', '0',
    ])
    expect(view.find('[data-testid=library-none]').exists()).toBe(false)
    await view.find('input[name=place]').setValue('m') // one letter: not sent (the API asks for 2+)
    await flushPromises()
    expect(queries[queries.length - 1].has('place')).toBe(false)
    await view.find('input[name=place]').setValue('paris')
    await flushPromises()
    expect(view.find('[data-testid=library-none]').text()).toBe('No file matches these filters.')
    expect(view.text()).not.toContain('Nothing here yet.')
  })
})

describe('duplicates', () => {
  const file = (c: string, filename: string) => ({
    media_id: c.repeat(64), kind: 'image', mime: 'image/jpeg', size_bytes: 1, width: 10, height: 10,
    duration_s: null, streams: [], filename, deduplicated: true, created_at: '2026-12-07T00:00:00Z',
    taken_at: null, place: null,
  })
  it('shows each group with its files and what made them duplicates, or says there are none (both languages)', async () => {
    const link = { media_id: 'a'.repeat(64), other_id: 'b'.repeat(64), similarity: 0.84, method: 'pHash+dHash', detail: '20 of 128 bits differ' }
    gateway({
      'GET /v1/duplicates': () => json(200, { data: [{ media: [file('a', 'bus.jpg'), file('b', 'bus-copy.jpg')], links: [link] }], count: 1, limit: 100, offset: 0 }),
      'GET /v1/media/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/thumbnail': () => new Response(new Blob(['x']), { status: 200 }),
    })
    const asked: string[] = []
    const stub = globalThis.fetch
    vi.stubGlobal('fetch', async (request: Request | string) => {
      const url = typeof request === 'string' ? request : request.url
      asked.push(new URL(url, 'http://ui.test').search)
      return typeof request === 'string' ? new Response(new Blob(['x']), { status: 200 }) : stub(request)
    })
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:x', revokeObjectURL: () => undefined }))
    const view = mount(DuplicatesView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    const groups = view.findAll('[data-testid=duplicate-group]')
    expect(groups).toHaveLength(1)
    expect(groups[0].find('h2').text()).toBe('2 files')
    expect(groups[0].findAll('a').map((a) => a.attributes('href'))).toEqual([`/media/${'a'.repeat(64)}`, `/media/${'b'.repeat(64)}`])
    expect(groups[0].find('.links').text()).toBe('bus.jpg ~ bus-copy.jpg: similarity 0.84 · pHash+dHash, 20 of 128 bits differ')
    expect(asked.filter((q) => q.startsWith('?size='))).toEqual(['?size=128', '?size=128']) // a size the gateway serves

    gateway({ 'GET /v1/duplicates': () => json(200, { data: [], count: 0, limit: 100, offset: 0 }) })
    const empty = mount(DuplicatesView, { global: { plugins: [i18nFor('de'), memoryRouter()] } })
    await flushPromises()
    expect(empty.find('[data-testid=duplicates-none]').text()).toContain('Noch keine Duplikate')
  })
})

describe('admin view', () => {
  it("shows each capability's workers per device, its oldest waiting task and its failures of the last hour", async () => {
    const fleet = {
      job_manager: 'ok',
      capabilities: [
        { capability: 'ocr_detection', queue: 'ocr_detection', tasks: ['ocr'], workers: 2, devices: { cpu: 1, cuda: 1 },
          queued: { high: 1, normal: 0, low: 2 }, oldest_wait_s: 93.4, failed_last_hour: 3, model_versions: {},
          readiness: { ocr: { state: 'ready', workers: 2, ready_workers: 2, message: 'ready' } } },
      ],
    }
    vi.stubGlobal('fetch', async (input: Request | string) => {
      const url = typeof input === 'string' ? input : input.url
      const path = new URL(url, 'http://ui').pathname.replace(/^\/api/, '')
      if (path === '/readyz') return json(200, { status: 'ready', checks: { database: 'ok', redis: 'ok' } })
      if (path === '/v1/admin/services') return json(200, fleet)
      return json(200, []) // GET /v1/users, GET /v1/api-keys: lists
    })
    const view = mount(AdminView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    await flushPromises()
    expect(view.find('[data-testid=oldest-wait]').text()).toBe('93 s')
    expect(view.find('[data-testid=failed-hour]').text()).toBe('3')
    expect(view.find('[data-testid=workers]').text()).toBe('2')
    expect(view.find('[data-testid=devices]').text()).toBe('cpu: 1, cuda: 1')
  })
})
