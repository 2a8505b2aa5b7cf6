// Uploads with progress (fetch cannot report upload progress: XMLHttpRequest does) and the
// tasks offered per media kind.
import { API_ROOT, ApiError, toApiError, type Media, type TaskName } from './api/client'
import { session } from './session'

export type Kind = 'image' | 'audio' | 'video'

/** Tasks a job on each kind can run, and which of them start checked. */
export const TASKS: Record<Kind, { all: TaskName[]; checked: TaskName[] }> = {
  image: { all: ['ocr', 'pose', 'faces', 'nsfw', 'clip'], checked: ['ocr', 'pose', 'faces', 'nsfw', 'clip'] },
  audio: { all: ['transcribe', 'summarize'], checked: ['transcribe'] },
  video: { all: ['transcribe', 'pose', 'faces', 'ocr', 'nsfw', 'clip'], checked: ['transcribe', 'pose', 'faces'] },
}

/** Task options the UI always asks for: word timings, so the transcript follows playback word by word. */
export function optionsFor(tasks: TaskName[]): Record<string, Record<string, unknown>> | undefined {
  return tasks.includes('transcribe') ? { transcribe: { word_timestamps: true } } : undefined
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
