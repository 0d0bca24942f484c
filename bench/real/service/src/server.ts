import compression from 'compression';
import cors from 'cors';
import express from 'express';
import helmet from 'helmet';
import pino from 'pino';
import { v4 as uuid } from 'uuid';
import { z } from 'zod';
import { VERSION } from './version';

const log = pino({ level: process.env.LOG_LEVEL ?? 'info' });
const Order = z.object({ item: z.string().min(1), quantity: z.number().int().positive() });
const orders = new Map<string, z.infer<typeof Order>>();

export const app = express();
app.use(helmet());
app.use(cors());
app.use(compression());
app.use(express.json());

app.get('/health', (_req, res) => {
  res.json({ status: 'ok', version: VERSION });
});

app.post('/orders', (req, res) => {
  const parsed = Order.safeParse(req.body);
  if (!parsed.success) {
    res.status(400).json({ errors: parsed.error.issues });
    return;
  }
  const id = uuid();
  orders.set(id, parsed.data);
  log.info({ id }, 'order created');
  res.status(201).json({ id, ...parsed.data });
});

app.get('/orders/:id', (req, res) => {
  const order = orders.get(req.params.id);
  if (!order) {
    res.status(404).end();
    return;
  }
  res.json(order);
});

if (require.main === module) {
  const port = Number(process.env.PORT ?? 3000);
  app.listen(port, () => log.info({ port, version: VERSION }, 'listening'));
}
