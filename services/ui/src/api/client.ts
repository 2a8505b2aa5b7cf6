// The gateway's API, typed from its OpenAPI schema (schema.d.ts is generated from
// openapi.json: `make ui-api`; a test fails when either drifts from the gateway).
import createClient, { type Middleware } from 'openapi-fetch'
import type { components, paths } from './schema'
import { session } from '../session'

export type Schemas = components['schemas']
export type Job = Schemas['JobPublic']
export type Media = Schemas['MediaPublic']
export type TaskName = keyof Schemas['JobResults']

/** Where nginx serves the gateway (the dev server proxies the same prefix). */
export const API_ROOT = '/api'

/** The common error envelope's message, or a fallback for a network failure. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message)
  }
}

export function toApiError(status: number, body: unknown): ApiError {
  const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error
  return new ApiError(status, error?.code ?? `http_${status}`, error?.message ?? `HTTP ${status}`)
}

const retries = new WeakMap<Request, Request>()

/** Bearer header on each request; one refresh and one retry after a 401 (expired access token). */
const auth: Middleware = {
  async onRequest({ request }) {
    await session.fresh()
    if (session.state.access) request.headers.set('Authorization', `Bearer ${session.state.access}`)
    retries.set(request, request.clone())
    return request
  },
  async onResponse({ request, response }) {
    const retry = retries.get(request)
    if (response.status !== 401 || !retry || !session.state.refresh) return response
    if (!(await session.refresh())) return response
    retry.headers.set('Authorization', `Bearer ${session.state.access}`)
    return fetch(retry)
  },
}

// An absolute base (Request needs one outside a page) and fetch looked up at call time.
export const api = createClient<paths>({
  baseUrl: new URL(API_ROOT, globalThis.location?.origin ?? 'http://localhost').href,
  fetch: (request) => globalThis.fetch(request),
})
api.use(auth)

/** data of an openapi-fetch answer, or throw its error envelope as an ApiError. */
export async function must<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call
  if (error !== undefined || !response.ok) throw toApiError(response.status, error)
  return data as T
}

/** A GET of a binary resource with the bearer header, as an object URL (thumbnails). */
export async function objectUrl(path: string): Promise<string> {
  await session.fresh()
  const response = await fetch(API_ROOT + path, {
    headers: session.state.access ? { Authorization: `Bearer ${session.state.access}` } : {},
  })
  if (!response.ok) throw toApiError(response.status, await response.json().catch(() => undefined))
  return URL.createObjectURL(await response.blob())
}
