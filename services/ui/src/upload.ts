// Uploads with progress (fetch cannot report upload progress: XMLHttpRequest does) and the
// tasks offered per media kind.
import { API_ROOT, ApiError, toApiError, type Media, type Schemas, type TaskName } from './api/client'
import { session } from './session'

export type Kind = 'image' | 'audio' | 'video'
export const KINDS: Kind[] = ['image', 'audio', 'video']

/** A task as GET /v1/tasks describes it (its options schema, kinds, readiness). */
export type TaskInfo = Schemas['TaskInfo']

export interface Choice {
  task: TaskInfo
  /** Can run now: a worker with the task's models is live. */
  ready: boolean
  /** Ticked at first: a default for the kind, and ready. */
  checked: boolean
}

/** The tasks offered for each kind, from GET /v1/tasks: every task that runs on the kind; ticked
 * when it is a default for the kind and ready; those not ready are shown with the reason. */
export function choices(tasks: TaskInfo[]): Record<Kind, Choice[]> {
  const out = { image: [], audio: [], video: [] } as Record<Kind, Choice[]>
  for (const kind of KINDS) {
    for (const task of tasks) {
      if (!task.media_kinds.includes(kind)) continue
      const ready = task.readiness?.state === 'ready'
      out[kind].push({ task, ready, checked: ready && task.default_for.includes(kind) })
    }
  }
  return out
}

/** Task options the UI always asks for: word timings, so the transcript follows playback word by
 * word; `diarize`: tell the speakers apart too (who spoke when). */
export function optionsFor(tasks: TaskName[], diarize = false): Record<string, Record<string, unknown>> | undefined {
  if (!tasks.includes('transcribe')) return undefined
  return { transcribe: diarize ? { word_timestamps: true, diarize: true } : { word_timestamps: true } }
}

/** The gateway's default GATEWAY_MAX_UPLOAD_BYTES (it refuses larger uploads itself too). */
export const MAX_UPLOAD_BYTES = 50 * 1024 * 1024

/** Why a file is refused before it is sent, or null: 'type' (not image/audio/video) or 'size'. */
export function refusal(file: Pick<File, 'type' | 'size'>, maxBytes = MAX_UPLOAD_BYTES): 'type' | 'size' | null {
  if (file.type && !/^(image|audio|video)\//.test(file.type)) return 'type'
  if (file.size > maxBytes) return 'size'
  return null
}

/** The kind a browser's MIME type names; the gateway's probe decides in the end. */
export function kindOf(type: string): Kind | null {
  const top = type.split('/')[0]
  return top === 'image' || top === 'audio' || top === 'video' ? top : null
}

/** POST /v1/media as multipart (field `file`), reporting progress 0..1. Rejects with ApiError. */
export async function uploadFile(file: File, onProgress: (fraction: number) => void): Promise<Media> {
  await session.fresh()
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `${API_ROOT}/v1/media`)
    if (session.state.access) xhr.setRequestHeader('Authorization', `Bearer ${session.state.access}`)
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total)
    xhr.onerror = () => reject(new ApiError(0, 'network', 'network error'))
    xhr.onload = () => {
      let body: unknown
      try {
        body = JSON.parse(xhr.responseText)
      } catch {
        body = undefined
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1)
        resolve(body as Media)
      } else reject(toApiError(xhr.status, body))
    }
    const form = new FormData()
    form.append('file', file, file.name)
    xhr.send(form)
  })
}
