import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchRefused, fetchPublic, isPublicAddress } from './public-fetch.ts';

describe('isPublicAddress', () => {
  it.each([
    ['8.8.8.8', true],
    ['1.1.1.1', true],
    ['2606:4700:4700::1111', true],
    ['127.0.0.1', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['172.32.0.1', true],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['::1', false],
    ['::', false],
    ['fe80::1', false],
    ['fd00::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:8.8.8.8', true],
    ['not an address', false],
  ])('%s → %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

describe('fetchPublic', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/big') res.end(Buffer.alloc(2048));
      else if (req.url === '/redirect') res.writeHead(302, { location: '/small' }).end();
      else if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end();
      else if (req.url === '/chunked') {
        res.write(Buffer.alloc(600));
        res.end(Buffer.alloc(600));
      } else res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const o = { dev: true, maxBytes: 1024, what: 'a test body' };

  it('reads a body and follows a redirect in dev mode', async () => {
    expect((await fetchPublic(`${base}/small`, o)).body.toString()).toBe('ok');
    expect((await fetchPublic(`${base}/redirect`, o)).body.toString()).toBe('ok');
  });

  it('refuses bodies over the bound, declared or streamed, and redirect loops', async () => {
    await expect(fetchPublic(`${base}/big`, o)).rejects.toThrow(/2048 bytes, over the 1024-byte bound/);
    await expect(fetchPublic(`${base}/chunked`, o)).rejects.toThrow(FetchRefused);
    await expect(fetchPublic(`${base}/loop`, o)).rejects.toThrow(/more than 3 redirects/);
  });

  it('outside dev mode, refuses loopback by literal and by name, and plain http', async () => {
    const port = (server.address() as AddressInfo).port;
    const prod = { ...o, dev: false };
    await expect(fetchPublic(`https://127.0.0.1:${port}/small`, prod)).rejects.toThrow(
      /127\.0\.0\.1 is not a public address/,
    );
    await expect(fetchPublic(`https://[::1]:${port}/small`, prod)).rejects.toThrow(
      /::1 is not a public address/,
    );
    await expect(fetchPublic(`https://localhost:${port}/small`, prod)).rejects.toThrow(
      /localhost resolves to a non-public address/,
    );
    await expect(fetchPublic(`${base}/small`, prod)).rejects.toThrow(/https only/);
  });
});
