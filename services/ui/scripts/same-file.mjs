// node scripts/same-file.mjs A B: exit 1 (and say so) when the two files differ.
import { readFileSync, rmSync } from 'node:fs'
const [a, b] = process.argv.slice(2)
const same = readFileSync(a, 'utf8') === readFileSync(b, 'utf8')
rmSync(b)
if (!same) {
  console.error(`${a} is out of date with src/api/openapi.json: run npm run gen-api (make ui-api)`)
  process.exit(1)
}
console.log(`${a} matches src/api/openapi.json`)
