/**
 * What the strict fakes of test/fakes/ share: answering commands inside the real SDK client stack, counting and
 * recording calls, opaque pagination tokens, and scripted faults.
 *
 * A fake sits at the start of the client's middleware stack ('initialize' step), so the SDK builds the command and the
 * adapter under test sees the SDK's own types, but nothing is serialised, signed or sent. Neither sinon nor
 * aws-sdk-client-mock is involved: the bench measures memory, and they would keep every call's arguments alive.
 */
import { randomBytes } from 'crypto';

/** A call the fake refuses to answer because the API reference does not say what the service does: no test may rely on a guess. */
export class FakeUndocumentedBehaviourError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FakeUndocumentedBehaviourError';
  }
}

export interface RecordedCall {
  readonly command: string;
  readonly input: Record<string, unknown>;
}

export interface FakeServiceOptions {
  /** Wait this long before each answer (the bench models network latency). @default 0 */
  readonly latencyMs?: number;
  /** Keep a copy of every call's input in `requests`. Off for the bench, whose memory it would inflate. @default true */
  readonly recordRequests?: boolean;
}

type Handler = (input: unknown) => object;

interface ScriptedFault {
  readonly error: Error;
  /** 1-based index of the command's calls this fault answers; every call when undefined. */
  readonly call?: number;
}

interface MiddlewareStackLike {
  add(
    middleware: (next: unknown, context: { commandName?: string }) => (args: { input: Record<string, unknown> }) => Promise<unknown>,
    options: { step: 'initialize'; priority: 'high'; name: string },
  ): void;
}

/** Base of the ECR and CodeBuild fakes: dispatch by command name, call counting, recording and scripted whole-call faults. */
export abstract class FakeService {
  /** Calls per command name (without the `Command` suffix), including refused ones: the service would have counted them too. */
  readonly calls = new Map<string, number>();
  /** Every call's input, in order (when `recordRequests` is on). */
  readonly requests: RecordedCall[] = [];
  private readonly latencyMs: number;
  private readonly recordRequests: boolean;
  private readonly faults = new Map<string, ScriptedFault[]>();
  private readonly actions = new Map<string, { readonly call: number; readonly action: () => void }[]>();

  protected constructor(private readonly serviceName: string, options: FakeServiceOptions) {
    this.latencyMs = options.latencyMs ?? 0;
    this.recordRequests = options.recordRequests ?? true;
  }

  protected abstract handlers(): Record<string, Handler>;

  /** Answers every command of `client` from this fake. Returns the client. */
  attach<C extends { middlewareStack: unknown }>(client: C): C {
    const handlers = this.handlers();
    (client.middlewareStack as MiddlewareStackLike).add((_next, context) => async args => {
      const name = (context.commandName ?? '').replace(/Command$/, '');
      const handler = handlers[name];
      if (!handler) throw new FakeUndocumentedBehaviourError(`fake ${this.serviceName}: ${name} is not modelled`);
      const n = (this.calls.get(name) ?? 0) + 1;
      this.calls.set(name, n);
      if (this.recordRequests) this.requests.push({ command: name, input: structuredClone(args.input) });
      if (this.latencyMs > 0) await new Promise(resolve => setTimeout(resolve, this.latencyMs));
      for (const a of this.actions.get(name) ?? []) if (a.call === n) a.action();
      const fault = (this.faults.get(name) ?? []).find(f => f.call === undefined || f.call === n);
      if (fault) throw fault.error;
      return { output: { $metadata: { httpStatusCode: 200 }, ...handler(args.input) }, response: {} };
    }, { step: 'initialize', priority: 'high', name: `strictFake${this.serviceName}` });
    return client;
  }

  /**
   * Scripts a whole-call fault (throttling, access denied...): `call` is the 1-based index among this command's calls,
   * or every call when omitted. Only for fault cases: the fault replaces the answer, it does not relax any rule.
   */
  failCall(command: string, error: Error, call?: number): this {
    this.faults.set(command, [...(this.faults.get(command) ?? []), { error, call }]);
    return this;
  }

  /** Runs `action` (another client pushing, a concurrent run deleting...) just before the `call`-th call of `command` is answered. */
  beforeCall(command: string, call: number, action: () => void): this {
    this.actions.set(command, [...(this.actions.get(command) ?? []), { call, action }]);
    return this;
  }

  /** The recorded inputs of one command, in order. */
  inputsOf(command: string): Record<string, unknown>[] {
    return this.requests.filter(r => r.command === command).map(r => r.input);
  }

  callCount(command: string): number {
    return this.calls.get(command) ?? 0;
  }
}

interface TokenState<P> {
  readonly operation: string;
  readonly query: string;
  readonly position: P;
}

/**
 * Opaque pagination tokens: random strings the fake maps back to a position. A token is only good for the operation and
 * the query (repository or project, filters) that produced it, so a client cannot forge one, carry one across queries,
 * or lean on its format.
 */
export class TokenBook<P> {
  private readonly tokens = new Map<string, TokenState<P>>();

  issue(operation: string, query: string, position: P): string {
    const token = randomBytes(24).toString('base64');
    this.tokens.set(token, { operation, query, position });
    return token;
  }

  /** The position a token stands for, or undefined when the token is not one this fake issued for this operation and query. */
  resolve(operation: string, query: string, token: string): P | undefined {
    const state = this.tokens.get(token);
    if (!state || state.operation !== operation || state.query !== query) return undefined;
    return state.position;
  }
}

export function isArrayOf<T>(value: unknown, guard: (v: unknown) => v is T): value is T[] {
  return Array.isArray(value) && value.every(guard);
}

export const isString = (v: unknown): v is string => typeof v === 'string';
