// The signed-in user's tokens. The access token lives in memory only; the refresh token in
// localStorage, so a reload (or a new tab) signs in again without a password. Refreshes
// are single-flight and happen 30 s before the access token expires.
import { reactive } from 'vue'

const REFRESH_KEY = 'mediafleet.refresh'
const LEEWAY_MS = 30_000

export interface TokenPair {
  access_token: string
  refresh_token: string
  expires_in: number
  must_change_password: boolean
}

interface State {
  access: string | null
  refresh: string | null
  expiresAt: number
  mustChangePassword: boolean
}

const state = reactive<State>({
  access: null,
  refresh: localStorage.getItem(REFRESH_KEY),
  expiresAt: 0,
  mustChangePassword: false,
})
let inflight: Promise<boolean> | null = null

function store(pair: TokenPair): void {
  state.access = pair.access_token
  state.refresh = pair.refresh_token
  state.expiresAt = Date.now() + pair.expires_in * 1000
  state.mustChangePassword = pair.must_change_password
  localStorage.setItem(REFRESH_KEY, pair.refresh_token)
}

function clear(): void {
  state.access = null
  state.refresh = null
  state.expiresAt = 0
  state.mustChangePassword = false
  localStorage.removeItem(REFRESH_KEY)
}

async function refresh(): Promise<boolean> {
  if (!state.refresh) return false
  inflight ??= (async () => {
    try {
      const response = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: state.refresh }),
      })
      if (response.status === 401) {
        clear() // reused, revoked or expired: sign in again
        return false
      }
      if (!response.ok) return false // the gateway is down: keep the refresh token
      store((await response.json()) as TokenPair)
      return true
    } catch {
      return false
    } finally {
      inflight = null
    }
  })()
  return inflight
}

export const session = {
  state,
  store,
  clear,
  refresh,
  /** Refresh first when the access token is missing or about to expire. */
  async fresh(): Promise<void> {
    if (state.refresh && (!state.access || Date.now() > state.expiresAt - LEEWAY_MS)) await refresh()
  },
  get signedIn(): boolean {
    return state.refresh !== null
  },
}
