import { Readable } from 'stream';

export interface FakeResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

interface RawResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: Readable;
}

export interface FakeHttpHandler {
  readonly requests: { target: string; at: number }[];
  handle(request: { headers: Record<string, string> }): Promise<{ response: RawResponse }>;
  updateHttpClientConfig(): void;
  httpHandlerConfigs(): Record<string, never>;
  destroy(): void;
}

export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}): FakeResponse {
  return { statusCode, headers: { 'content-type': 'application/x-amz-json-1.1', ...headers }, body: JSON.stringify(body) };
}

/**
 * An HTTP handler that answers the SDK's requests from a script, so that tests run the client's real middleware
 * (signing, retries, deserialisation) without a network. Records each request's X-Amz-Target and (fake) time.
 */
export function fakeHttpHandler(script: FakeResponse[]): FakeHttpHandler {
  const queue = [...script];
  const requests: { target: string; at: number }[] = [];
  return {
    requests,
    async handle(request) {
      requests.push({ target: request.headers['x-amz-target'], at: Date.now() });
      const next = queue.shift();
      if (!next) throw new Error(`fake HTTP handler: no response scripted for request ${requests.length}`);
      return { response: { statusCode: next.statusCode, headers: next.headers, body: Readable.from([Buffer.from(next.body)]) } };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs() {
      return {};
    },
    destroy() {},
  };
}
