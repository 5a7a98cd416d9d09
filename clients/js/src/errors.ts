import type { ErrorResponse } from './protocol.js';

/**
 * TaskBridgeError is a refused request: an HTTP error answer (status and the
 * server's error envelope), or a WebSocket closed with 1008 and an error
 * code as its reason (status is then the code's HTTP status). code is empty
 * when the answer carried no envelope (a proxy's error page).
 */
export class TaskBridgeError extends Error {
  override readonly name = 'TaskBridgeError';
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(`taskbridge: ${status}${code ? ` ${code}` : ''}: ${message}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** 401: missing or refused credentials. */
  get unauthorized(): boolean { return this.status === 401; }
  /** 404: no such task, or another owner's (the server cannot tell them apart). */
  get notFound(): boolean { return this.status === 404; }
  /** 409: e.g. a clientRequestId reused with another payload. */
  get conflict(): boolean { return this.status === 409; }
  /** 429: too many streams or requests. */
  get rateLimited(): boolean { return this.status === 429; }
  /** fatal: retrying cannot help (a 4xx but 408). */
  get fatal(): boolean { return this.status >= 400 && this.status < 500 && this.status !== 408; }
}

/** The HTTP status each error code answers with (the protocol's mapping). */
export function statusOfCode(code: string): number {
  switch (code) {
    case 'AUTHENTICATION_ERROR': return 401;
    case 'TASK_NOT_FOUND': case 'ROUTE_NOT_FOUND': return 404;
    case 'TASK_OWNERSHIP_ERROR': return 403;
    case 'TASK_CONFLICT': case 'IDEMPOTENCY_CONFLICT': case 'TASK_ALREADY_TERMINAL': case 'INVALID_TASK_STATE': return 409;
    case 'INVALID_REQUEST': case 'UPLOAD_VALIDATION_ERROR': return 400;
    case 'REQUEST_VALIDATION_ERROR': return 422;
    case 'TOO_MANY_STREAMS': case 'QUOTA_EXCEEDED': return 429;
    case 'STORAGE_FULL': return 507;
    case 'TASK_SUBMISSION_ERROR': case 'SERVICE_UNAVAILABLE': return 503;
    default: return 500;
  }
}

/** errorFromResponse reads a failed answer's envelope. */
export async function errorFromResponse(res: Response): Promise<TaskBridgeError> {
  let text = '';
  try { text = await res.text(); } catch { /* the body is gone */ }
  try {
    const env = JSON.parse(text) as Partial<ErrorResponse>;
    if (env && typeof env.code === 'string' && env.code) {
      return new TaskBridgeError(res.status, env.code, env.message ?? env.code, env.details ?? {});
    }
  } catch { /* not JSON */ }
  return new TaskBridgeError(res.status, '', res.statusText || `HTTP ${res.status}`);
}
