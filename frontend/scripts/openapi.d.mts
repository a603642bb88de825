/** The OpenAPI document as the Python app builds it (runs the repository's Python). */
export function dumpDocument(): string;
/** TypeScript declarations for an OpenAPI document given as JSON text. */
export function schemaFor(documentText: string): Promise<string>;
export const DOCUMENT: string;
export const SCHEMA: string;
