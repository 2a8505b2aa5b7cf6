// A job's live state over Server-Sent Events. EventSource sends no Authorization header, so
// each connection opens with a link token (POST /v1/jobs/{id}/events/token: this job's
// stream only, 120 s); a dropped connection reopens with a new one until the job finishes.
import { onBeforeUnmount, ref, type Ref } from 'vue'
import { API_ROOT, api, must, type Job } from './api/client'

export interface TaskProgress {
  fraction: number
  message: string
}

const TERMINAL = new Set(['succeeded', 'failed', 'canceled'])
export const isTerminal = (status: string | undefined): boolean => !!status && TERMINAL.has(status)

export function useJobEvents(onFinished: (job: Job) => void): {
  job: Ref<Job | null>
  progress: Ref<Record<string, TaskProgress>>
  follow: (jobId: string) => Promise<void>
  stop: () => void
} {
  const job = ref<Job | null>(null)
  const progress = ref<Record<string, TaskProgress>>({})
  let source: EventSource | null = null
  let following = ''
  let timer: ReturnType<typeof setTimeout> | undefined

  function stop(): void {
    source?.close()
    source = null
    clearTimeout(timer)
  }

  async function open(jobId: string): Promise<void> {
    stop()
    if (following !== jobId) return
    let url: string
    try {
      url = (await must(api.POST('/v1/jobs/{job_id}/events/token', { params: { path: { job_id: jobId } } }))).url
    } catch {
      timer = setTimeout(() => void open(jobId), 3000)
      return
    }
    const es = new EventSource(API_ROOT + url)
    source = es
    es.addEventListener('job', (e) => {
      const snapshot = JSON.parse((e as MessageEvent).data) as Job
      job.value = snapshot
      if (isTerminal(snapshot.status)) {
        stop()
        onFinished(snapshot)
      }
    })
    es.addEventListener('progress', (e) => {
      const data = JSON.parse((e as MessageEvent).data) as { task?: string; progress?: number; message?: string; task_status?: string }
      if (!data.task) return
      if (typeof data.progress === 'number')
        progress.value = { ...progress.value, [data.task]: { fraction: data.progress, message: data.message ?? '' } }
      if (data.task_status === 'succeeded')
        progress.value = { ...progress.value, [data.task]: { fraction: 1, message: '' } }
    })
    es.onerror = () => {
      if (source !== es) return
      stop() // reopen with a fresh token (the old one may have expired)
      if (!isTerminal(job.value?.status)) timer = setTimeout(() => void open(jobId), 2000)
    }
  }

  async function follow(jobId: string): Promise<void> {
    following = jobId
    progress.value = {}
    await open(jobId)
  }

  onBeforeUnmount(() => {
    following = ''
    stop()
  })
  return { job, progress, follow, stop }
}
