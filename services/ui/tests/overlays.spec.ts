import { describe, expect, it } from 'vitest'
import type { Schemas } from '../src/api/client'
import { highlight } from '../src/highlight'
import { COCO_SKELETON, faceLabel, hit, shapes, visibleLimbs } from '../src/overlays'

const person = (score: (i: number) => number) => Array.from({ length: 17 }, (_, i) => [10 * i, 20 * i, score(i)])

describe('pose skeleton', () => {
  it('has the 19 COCO limbs over 17 keypoints', () => {
    expect(COCO_SKELETON).toHaveLength(19)
    expect(new Set(COCO_SKELETON.flat()).size).toBe(17)
  })

  it('draws only limbs whose both ends are visible', () => {
    expect(visibleLimbs(person(() => 0.9))).toHaveLength(19)
    // left ankle (15) hidden: the limb 15-13 goes, 13-11 stays
    const limbs = visibleLimbs(person((i) => (i === 15 ? 0.1 : 0.9)))
    expect(limbs).toHaveLength(18)
    expect(limbs).not.toContainEqual([[150, 300], [130, 260]])
    expect(limbs).toContainEqual([[130, 260], [110, 220]])
  })
})

describe('hover targets', () => {
  const ocr = { lines: [{ text: 'big', box: [0, 0, 100, 100], polygon: [], score: 1 }, { text: 'small', box: [10, 10, 30, 30], polygon: [], score: 1 }] }
  const faces = {
    faces: [
      { box: [50, 50, 60, 60], face_id: 'f1', cluster_id: 'c1', person: { id: 'p', name: 'Ada', similarity: 0.9 } },
      { box: [200, 200, 220, 220], face_id: 'f2', cluster_id: 'c2', person: null },
      { box: [300, 300, 320, 320], face_id: null, cluster_id: null, person: null },
    ],
  }
  const results = { ocr: ocr as unknown as Schemas['OcrResult'], faces: faces as unknown as Schemas['FacesResult'] }

  it('picks the smallest box under the pointer', () => {
    const list = shapes(results, { ocr: true, pose: true, faces: true }, 'Unnamed')
    expect(hit(list, 20, 20)?.label).toBe('small')
    expect(hit(list, 80, 80)?.label).toBe('big')
    expect(hit(list, 55, 55)).toMatchObject({ kind: 'face', label: 'Ada', faceId: 'f1' })
    expect(hit(list, 150, 150)).toBeNull()
  })

  it('leaves out hidden layers and names unnamed clusters', () => {
    const list = shapes(results, { ocr: false, pose: true, faces: true }, 'Unnamed')
    expect(list.map((s) => s.label)).toEqual(['Ada', 'Unnamed', ''])
    expect(faceLabel(faces.faces[2] as unknown as Schemas['Face'], 'Unnamed')).toBe('')
  })
})

describe('search highlight', () => {
  it('marks each query word in any case, keeps the rest', () => {
    expect(highlight('Soap and SOAPY water', 'soap')).toEqual([
      { text: 'Soap', hit: true },
      { text: ' and ', hit: false },
      { text: 'SOAP', hit: true },
      { text: 'Y water', hit: false },
    ])
  })
  it('ignores short words and regex characters', () => {
    expect(highlight('a+b (c)', 'a+ (c')).toEqual([{ text: 'a+b (c)', hit: false }])
  })
})
