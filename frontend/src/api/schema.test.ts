// @vitest-environment node
// The checked-in types are exactly what openapi-typescript makes of the checked-in
// OpenAPI document (`npm run check:api` also compares that document with the live API).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DOCUMENT, SCHEMA, schemaFor } from "../../scripts/openapi.mjs";

describe("generated API types", () => {
  it("match openapi.json (run `npm run gen:api` after changing the API)", async () => {
    const expected = await schemaFor(readFileSync(DOCUMENT, "utf8"));
    expect(readFileSync(SCHEMA, "utf8") === expected, "src/api/schema.d.ts is stale").toBe(true);
  });
});
