import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import de from '../src/locales/de.json'
import en from '../src/locales/en.json'

type Tree = { [key: string]: string | Tree }
const keys = (tree: Tree, prefix = ''): string[] =>
  Object.entries(tree).flatMap(([k, v]) => (typeof v === 'string' ? [prefix + k] : keys(v, `${prefix}${k}.`)))

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : /\.(vue|ts)$/.test(name) ? [path] : []
  })
}

describe('locales', () => {
  it('German has exactly the English keys, none empty', () => {
    expect(keys(de as Tree).sort()).toEqual(keys(en as Tree).sort())
    for (const key of keys(de as Tree)) expect(key.split('.').reduce<unknown>((t, k) => (t as Tree)[k], de)).not.toBe('')
  })

  it('every literal key the components use exists', () => {
    const known = new Set(keys(en as Tree))
    const used = new Set<string>()
    for (const file of sources(join(__dirname, '../src')))
      for (const m of readFileSync(file, 'utf8').matchAll(/\bt\('([a-zA-Z]+\.[a-zA-Z.]+)'/g)) used.add(m[1])
    expect(used.size).toBeGreaterThan(80)
    expect([...used].filter((k) => !known.has(k))).toEqual([])
  })

  it('names every task and job status of the API in both languages', async () => {
    const spec = JSON.parse(readFileSync(join(__dirname, '../src/api/openapi.json'), 'utf8'))
    const tasks = Object.keys(spec.components.schemas.JobResults.properties)
    const statuses: string[] = spec.components.schemas.JobStatus.enum
    for (const messages of [en, de] as Tree[]) {
      expect(Object.keys(messages.task as Tree).sort()).toEqual([...tasks].sort())
      expect(Object.keys(messages.status as Tree).sort()).toEqual([...statuses].sort())
    }
  })
})
