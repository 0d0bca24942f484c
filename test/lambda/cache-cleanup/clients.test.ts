// No aws-sdk-client-mock here: it stubs send() on the client class, which would bypass the retry middleware under test.
import { createCodeBuildClient } from '../../../lambda/cache-cleanup/codebuild';
import { createEcrClient, describeImages } from '../../../lambda/cache-cleanup/ecr';
import { NOW } from './fixtures';
import { fakeHttpHandler, jsonResponse } from './http';

const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };

afterEach(() => {
  jest.useRealTimers();
});

test('both clients use adaptive retries', async () => {
  const strategies = [await createEcrClient({ region: 'us-east-1' }).config.retryStrategy(),
    await createCodeBuildClient({ region: 'us-east-1' }).config.retryStrategy()];
  for (const strategy of strategies) expect('mode' in strategy && strategy.mode).toBe('adaptive');
});

test('a ThrottlingException is retried after a back-off and pagination goes on', async () => {
  // The real SDK stack (signing, retry, deserialisation) against a scripted HTTP handler; fake timers skip the back-off.
  jest.useFakeTimers({ now: NOW });
  const handler = fakeHttpHandler([
    jsonResponse(400, { __type: 'ThrottlingException', message: 'Rate exceeded' }, { 'x-amzn-errortype': 'ThrottlingException' }),
    jsonResponse(200, { imageDetails: [{ imageDigest: 'sha256:a', imagePushedAt: NOW / 1000 }], nextToken: 'n' }),
    jsonResponse(200, { imageDetails: [{ imageDigest: 'sha256:b', imagePushedAt: NOW / 1000 }] }),
  ]);
  const client = createEcrClient({ region: 'us-east-1', credentials: CREDENTIALS, requestHandler: handler });
  const images = describeImages(client, 'app-cache');
  const result = images.then(r => r, (e: Error) => e);
  for (let i = 0; i < 600 && handler.requests.length < 3; i++) await jest.advanceTimersByTimeAsync(1_000);
  expect(handler.requests.length).toBe(3);
  await result;
  expect((await images).map(i => i.digest)).toEqual(['sha256:a', 'sha256:b']);
  expect(handler.requests.map(r => r.target)).toEqual(Array(3).fill('AmazonEC2ContainerRegistry_V20150921.DescribeImages'));
  // Adaptive mode waits after a throttle before it sends again.
  expect(handler.requests[1].at - handler.requests[0].at).toBeGreaterThan(0);
});

test('gives up after the configured attempts and throws the throttling error', async () => {
  jest.useFakeTimers({ now: NOW });
  const throttled = jsonResponse(400, { __type: 'ThrottlingException', message: 'Rate exceeded' }, { 'x-amzn-errortype': 'ThrottlingException' });
  const handler = fakeHttpHandler(Array(20).fill(throttled));
  const client = createEcrClient({ region: 'us-east-1', credentials: CREDENTIALS, requestHandler: handler });
  const images = describeImages(client, 'app-cache');
  const settled = images.then(() => 'resolved', (e: Error) => e.name);
  await jest.advanceTimersByTimeAsync(10 * 60_000);
  expect(await settled).toBe('ThrottlingException');
  expect(handler.requests).toHaveLength(8);
});
