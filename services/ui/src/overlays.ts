// What the results view draws over an image: OCR lines, pose skeletons, face boxes. Every
// coordinate comes in the displayed image's pixels (after EXIF orientation), as the
// capabilities report them; `scale` maps them to the canvas.
import type { Schemas } from './api/client'

/** The COCO-17 skeleton as index pairs into the keypoints (the pose contract's COCO_SKELETON). */
export const COCO_SKELETON: ReadonlyArray<readonly [number, number]> = [
  [15, 13], [13, 11], [16, 14], [14, 12], [11, 12], [5, 11], [6, 12], [5, 6], [5, 7],
  [6, 8], [7, 9], [8, 10], [1, 2], [0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6],
]

/** Keypoints below this visibility score are not drawn (nor their limbs). */
export const KEYPOINT_MIN_SCORE = 0.5

export interface Shape {
  kind: 'ocr' | 'face'
  /** xyxy in image pixels */
  box: [number, number, number, number]
  label: string
  /** the face's id, for "find this face everywhere" */
  faceId?: string | null
}

export type Layers = { ocr: boolean; pose: boolean; faces: boolean }

export interface Drawable {
  ocr?: Schemas['OcrResult'] | null
  pose?: Schemas['PoseResult'] | null
  faces?: Schemas['FacesResult'] | null
}

const COLORS = { ocr: '#1f5fbf', pose: '#e8590c', faces: '#2b8a3e', limb: '#ffd43b' }

/** Limbs to draw for one person: pairs whose both ends are visible enough. */
export function visibleLimbs(
  keypoints: number[][],
  minScore = KEYPOINT_MIN_SCORE,
): Array<[[number, number], [number, number]]> {
  const limbs: Array<[[number, number], [number, number]]> = []
  for (const [a, b] of COCO_SKELETON) {
    const p = keypoints[a]
    const q = keypoints[b]
    if (p && q && p[2] >= minScore && q[2] >= minScore) limbs.push([[p[0], p[1]], [q[0], q[1]]])
  }
  return limbs
}

/** A face's caption: its person's name, else its unnamed cluster, else nothing. */
export function faceLabel(face: Schemas['Face'], unnamed: string): string {
  if (face.person?.name) return face.person.name
  return face.cluster_id ? unnamed : ''
}

/** The boxes one can point at (OCR lines, faces) with their hover text. */
export function shapes(results: Drawable, layers: Layers, unnamed: string): Shape[] {
  const out: Shape[] = []
  if (layers.ocr)
    for (const line of results.ocr?.lines ?? [])
      out.push({ kind: 'ocr', box: line.box as Shape['box'], label: line.text })
  if (layers.faces)
    for (const face of results.faces?.faces ?? [])
      out.push({ kind: 'face', box: face.box as Shape['box'], label: faceLabel(face, unnamed), faceId: face.face_id })
  return out
}

/** The smallest shape under (x, y) in image pixels, or null. */
export function hit(list: Shape[], x: number, y: number): Shape | null {
  let best: Shape | null = null
  let bestArea = Infinity
  for (const s of list) {
    const [x1, y1, x2, y2] = s.box
    const area = (x2 - x1) * (y2 - y1)
    if (x >= x1 && x <= x2 && y >= y1 && y <= y2 && area < bestArea) {
      best = s
      bestArea = area
    }
  }
  return best
}

/** Draw the image and the chosen layers at `scale` (canvas pixels per image pixel). */
export function draw(
  ctx: CanvasRenderingContext2D,
  image: CanvasImageSource,
  results: Drawable,
  layers: Layers,
  scale: number,
  unnamed: string,
  highlight: Shape | null = null,
): void {
  const { width, height } = ctx.canvas
  ctx.clearRect(0, 0, width, height)
  ctx.drawImage(image, 0, 0, width, height)
  ctx.lineWidth = 2
  const rect = (b: number[], color: string) => {
    ctx.strokeStyle = color
    ctx.strokeRect(b[0] * scale, b[1] * scale, (b[2] - b[0]) * scale, (b[3] - b[1]) * scale)
  }
  if (layers.ocr)
    for (const line of results.ocr?.lines ?? []) {
      const poly = line.polygon?.length ? line.polygon : null
      ctx.strokeStyle = COLORS.ocr
      if (poly) {
        ctx.beginPath()
        poly.forEach(([x, y], i) => (i ? ctx.lineTo(x * scale, y * scale) : ctx.moveTo(x * scale, y * scale)))
        ctx.closePath()
        ctx.stroke()
      } else rect(line.box, COLORS.ocr)
    }
  if (layers.pose)
    for (const person of results.pose?.people ?? []) {
      rect(person.box, COLORS.pose)
      ctx.strokeStyle = COLORS.limb
      ctx.lineWidth = 3
      for (const [[x1, y1], [x2, y2]] of visibleLimbs(person.keypoints)) {
        ctx.beginPath()
        ctx.moveTo(x1 * scale, y1 * scale)
        ctx.lineTo(x2 * scale, y2 * scale)
        ctx.stroke()
      }
      ctx.fillStyle = COLORS.pose
      for (const [x, y, s] of person.keypoints)
        if (s >= KEYPOINT_MIN_SCORE) ctx.fillRect(x * scale - 2.5, y * scale - 2.5, 5, 5)
      ctx.lineWidth = 2
    }
  if (layers.faces) {
    ctx.font = '14px system-ui, sans-serif'
    for (const face of results.faces?.faces ?? []) {
      rect(face.box, COLORS.faces)
      const label = faceLabel(face, unnamed)
      if (label) {
        const w = ctx.measureText(label).width + 8
        ctx.fillStyle = COLORS.faces
        ctx.fillRect(face.box[0] * scale, face.box[1] * scale - 18, w, 18)
        ctx.fillStyle = '#fff'
        ctx.fillText(label, face.box[0] * scale + 4, face.box[1] * scale - 5)
      }
    }
  }
  if (highlight) {
    ctx.fillStyle = 'rgba(255, 212, 59, 0.35)'
    const b = highlight.box
    ctx.fillRect(b[0] * scale, b[1] * scale, (b[2] - b[0]) * scale, (b[3] - b[1]) * scale)
  }
}
