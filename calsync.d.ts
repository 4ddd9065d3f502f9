// Types of the package entry: everything index.d.ts (generated) declares, plus the error shape.
export * from './index'

/** Stable codes of errors thrown by calsync (`err.code`). */
export type CalsyncErrorCode =
  | 'DB_UNAVAILABLE'
  | 'SCHEMA_MISMATCH'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'PROVIDER_AUTH'
  | 'PROVIDER_UNAVAILABLE'
  | 'CLOSED'
  | 'DB_ERROR'

/** An error thrown or rejected by calsync. Messages never contain secrets. */
export interface CalsyncError extends Error {
  code: CalsyncErrorCode
}
