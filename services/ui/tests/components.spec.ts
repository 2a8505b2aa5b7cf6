import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import MetadataCard from '../src/components/MetadataCard.vue'
import SpeakersCard from '../src/components/SpeakersCard.vue'
import TranscriptPlayer from '../src/components/TranscriptPlayer.vue'
import { session } from '../src/session'
import { MAX_UPLOAD_BYTES, optionsFor, refusal } from '../src/upload'
import LoginView from '../src/views/LoginView.vue'
import UploadView from '../src/views/UploadView.vue'
import { i18nFor, memoryRouter } from './setup'

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

Element.prototype.scrollIntoView = () => undefined // jsdom has no layout

beforeEach(() => {
  localStorage.clear()
  session.clear()
})
afterEach(() => vi.unstubAllGlobals())

describe('sign in', () => {
  it('sends the OAuth2 form and goes to the forced password change', async () => {
    const calls: Request[] = []
    vi.stubGlobal('fetch', async (request: Request) => {
      calls.push(request.clone())
      return json(200, { access_token: 'A', refresh_token: 'R', token_type: 'bearer', expires_in: 1800, must_change_password: true })
    })
    const router = memoryRouter()
    await router.push('/login')
    const view = mount(LoginView, { global: { plugins: [i18nFor('de'), router] } })
    expect(view.text()).toContain('Anmelden')
    await view.find('input[name=username]').setValue('ada')
    await view.find('input[name=password]').setValue('first-password')
    await view.find('form').trigger('submit')
    await flushPromises()
    expect(calls[0].url).toMatch(/\/api\/v1\/auth\/token$/)
    expect(calls[0].headers.get('Content-Type')).toBe('application/x-www-form-urlencoded')
    expect(new URLSearchParams(await calls[0].text()).get('username')).toBe('ada')
    expect(session.state.access).toBe('A')
    expect(localStorage.getItem('mediafleet.refresh')).toBe('R')
    expect(router.currentRoute.value.path).toBe('/password')
  })

  it('says so on a wrong password and stores nothing', async () => {
    vi.stubGlobal('fetch', async () => json(401, { error: { code: 'invalid_credentials', message: 'x', details: null } }))
    const router = memoryRouter()
    const view = mount(LoginView, { global: { plugins: [i18nFor('en'), router] } })
    await view.find('form').trigger('submit')
    await flushPromises()
    expect(view.find('[role=alert]').text()).toBe('Wrong username or password.')
    expect(session.state.refresh).toBeNull()
  })
})

describe('token refresh', () => {
  it('refreshes an expired access token once and retries the request', async () => {
    session.store({ access_token: 'old', refresh_token: 'R1', expires_in: 3600, must_change_password: false })
    const seen: string[] = []
    vi.stubGlobal('fetch', async (input: Request | string, init?: RequestInit) => {
      const request = typeof input === 'string' ? new Request(new URL(input, 'http://x'), init) : input
      seen.push(`${new URL(request.url).pathname} ${request.headers.get('Authorization') ?? ''}`)
      if (request.url.endsWith('/v1/auth/refresh'))
        return json(200, { access_token: 'new', refresh_token: 'R2', expires_in: 3600, must_change_password: false })
      if (request.headers.get('Authorization') === 'Bearer old')
        return json(401, { error: { code: 'token_expired', message: 'token has expired', details: null } })
      return json(200, { id: 1, username: 'ada', is_admin: false, disabled: false, must_change_password: false, has_webhook_secret: false })
    })
    const { api } = await import('../src/api/client')
    const { data } = await api.GET('/v1/users/me')
    expect(data?.username).toBe('ada')
    expect(seen).toEqual(['/api/v1/users/me Bearer old', '/api/v1/auth/refresh ', '/api/v1/users/me Bearer new'])
    expect(localStorage.getItem('mediafleet.refresh')).toBe('R2')
  })
})

describe('upload', () => {
  it('refuses files by type and size before sending', () => {
    expect(refusal({ type: 'text/plain', size: 10 })).toBe('type')
    expect(refusal({ type: 'image/png', size: MAX_UPLOAD_BYTES + 1 })).toBe('size')
    expect(refusal({ type: 'video/mp4', size: 10 })).toBeNull()
    expect(refusal({ type: '', size: 10 })).toBeNull() // unknown to the browser: the gateway decides
  })

  it('lists a refused file with its reason and sends nothing', async () => {
    const fetchSpy = vi.fn(async (request: Request) => {
      expect(`${request.method} ${new URL(request.url).pathname}`).toBe('GET /api/v1/tasks')
      return new Response('{"data": [], "count": 0}', { status: 200, headers: { 'Content-Type': 'application/json' } })
    })
    vi.stubGlobal('fetch', fetchSpy)
    const view = mount(UploadView, { global: { plugins: [i18nFor('en'), memoryRouter()] } })
    const input = view.find('input[type=file]')
    Object.defineProperty(input.element, 'files', { value: [new File(['hello'], 'notes.txt', { type: 'text/plain' })] })
    await input.trigger('change')
    const item = view.find('[data-state=refused]')
    expect(item.text()).toContain('notes.txt')
    expect(item.text()).toContain('Refused: text/plain is not an image, audio or video file.')
    expect(fetchSpy).toHaveBeenCalledTimes(1) // the task list only: nothing of the file was sent
  })
})

describe('transcript player', () => {
  const segments = [
    { start: 0, end: 2.5, text: 'And so my fellow Americans' },
    { start: 2.5, end: 6, text: 'ask not what your country can do for you' },
  ]

  it('highlights the segment being heard and seeks on click', async () => {
    const view = mount(TranscriptPlayer, { props: { src: 'blob:x', kind: 'audio', segments }, global: { plugins: [i18nFor('en')] } })
    const audio = view.find('audio').element as HTMLAudioElement
    audio.currentTime = 3
    await view.find('audio').trigger('timeupdate')
    expect(view.find('li.current').text()).toContain('ask not')
    await view.findAll('li button')[0].trigger('click')
    expect(audio.currentTime).toBe(0)
    expect(view.find('li.current').text()).toContain('fellow Americans')
  })
})

describe('speakers', () => {
  const segments = [
    { start: 0, end: 10.6, text: 'And so my fellow Americans', speaker: 1 },
    { start: 15, end: 25, text: 'Für die besten Aussichten auf Hongkong', speaker: 2 },
  ]
  const speakers = [
    { id: 1, name: 'John F. Kennedy', talk_s: 10.6, turns: 1 },
    { id: 2, name: null, talk_s: 10.2, turns: 1 },
  ]

  it('names each segment by its speaker: the given name, else "Speaker N"', () => {
    const view = mount(TranscriptPlayer, { props: { src: 'blob:x', kind: 'audio', segments, speakers }, global: { plugins: [i18nFor('de')] } })
    expect(view.findAll('.speaker').map((x) => x.text())).toEqual(['John F. Kennedy:', 'Sprecher 2:'])
  })

  it('saves the names with PUT .../names and hands the job the renamed result', async () => {
    const calls: Request[] = []
    const renamed = { speakers: [{ ...speakers[0] }, { ...speakers[1], name: 'Reader' }] }
    vi.stubGlobal('fetch', async (request: Request) => {
      calls.push(request.clone())
      return json(200, { task: 'transcribe', result: renamed })
    })
    const card = mount(SpeakersCard, { props: { jobId: 'J1', speakers }, global: { plugins: [i18nFor('en')] } })
    expect((card.find('input[name=speaker-1]').element as HTMLInputElement).value).toBe('John F. Kennedy')
    expect(card.find('[data-speaker="2"]').text()).toContain('10 s, 1 turn')
    await card.find('input[name=speaker-2]').setValue('  Reader ')
    await card.find('form').trigger('submit')
    await flushPromises()
    expect(calls[0].method).toBe('PUT')
    expect(calls[0].url).toMatch(/\/api\/v1\/jobs\/J1\/tasks\/transcribe\/names$/)
    expect(await calls[0].json()).toEqual({ names: { 1: 'John F. Kennedy', 2: 'Reader' } })
    expect(card.emitted('renamed')?.[0]).toEqual([renamed])
    expect(card.find('[role=status]').text()).toBe('Saved.')
  })

  it('asks for diarization only when the user chose it', () => {
    expect(optionsFor(['transcribe'])).toEqual({ transcribe: { word_timestamps: true } })
    expect(optionsFor(['transcribe'], true)).toEqual({ transcribe: { word_timestamps: true, diarize: true } })
    expect(optionsFor(['ocr'], true)).toBeUndefined()
  })
})

describe('where and when', () => {
  const base = {
    engine: 'pillow' as const, model: '', model_version: '', media_kind: 'image' as const, format: 'JPEG',
    width: 810, height: 1080, duration_s: null, taken_at: null, taken_at_utc: null, taken_at_source: null,
    camera: null, exposure: null, orientation: null, gps: null, place: null, tags: {}, elapsed_ms: 1,
  }

  it('shows the local time as written, the place, the position and the camera', () => {
    const result = {
      ...base,
      taken_at: '2024-05-01T14:03:22.250000+02:00',
      camera: { make: 'Apple', model: 'iPhone XS', lens: 'back dual camera 6mm f/2.4', software: null },
      exposure: { exposure_time_s: 0.002, f_number: 2.4, iso: 16, focal_length_mm: 6, focal_length_35mm: 52, flash_fired: false },
      gps: { latitude: 40.4113889, longitude: -3.7073639, altitude_m: 645, source: 'exif:GPSInfo' },
      place: { name: 'Madrid', admin1: 'Madrid', admin2: 'Provincia de Madrid', country_code: 'ES', distance_km: 0.699, attribution: 'GeoNames (geonames.org), CC BY 4.0' },
    }
    const card = mount(MetadataCard, { props: { result }, global: { plugins: [i18nFor('de')] } })
    expect(card.find('h2').text()).toBe('Wo und wann')
    expect(card.find('[data-testid=metadata-taken]').text()).toBe('2024-05-01 14:03:22 (UTC+02:00)')
    expect(card.find('[data-testid=metadata-place]').text()).toBe('Madrid, ES (nächster Ort, 0.7 km entfernt)')
    expect(card.find('[data-testid=metadata-gps]').text()).toBe('40.41139, -3.70736')
    expect(card.find('[data-testid=metadata-camera]').text()).toBe('Apple iPhone XS · back dual camera 6mm f/2.4')
    expect(card.text()).toContain('1/500 s · f/2.4 · ISO 16 · 6 mm')
    expect(card.text()).toContain('GeoNames (geonames.org), CC BY 4.0')
  })

  it('says plainly when the file records nothing', () => {
    const card = mount(MetadataCard, { props: { result: { ...base, taken_at: '2019-03-01T13:06:33' } }, global: { plugins: [i18nFor('en')] } })
    expect(card.find('[data-testid=metadata-taken]').text()).toBe('2019-03-01 13:06:33')
    const none = mount(MetadataCard, { props: { result: base }, global: { plugins: [i18nFor('en')] } })
    expect(none.find('[data-testid=metadata-empty]').text()).toBe('The file records no date, place or camera.')
    expect(none.find('dl').exists()).toBe(false)
  })
})
