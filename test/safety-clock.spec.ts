import { clockCorrection, readClock, shiftTimes } from './safety/clock-offset.js';

// The safety runner puts every client process's events on its own clock (test/safety/clock-offset.ts).
describe('safety checker: clocks of the client processes', () => {
  it('reads the offset from the shortest round trip, as if answered halfway through it', () => {
    const reading = readClock([
      { sent: 100, answered: 160, received: 140 }, // 40 ms round trip: ignored
      { sent: 200, answered: 206.5, received: 201 }, // 1 ms: the process reads 6 ms ahead
      { sent: 300, answered: 290, received: 310 },
    ]);
    expect(reading.offset).toBeCloseTo(6, 6);
    expect(reading.uncertainty).toBeCloseTo(0.5, 6);
  });

  it('corrects only an offset clearly larger than its uncertainty and rounding', () => {
    expect(clockCorrection({ offset: 6, uncertainty: 0.5 })).toBe(6);
    expect(clockCorrection({ offset: -4, uncertainty: 1 })).toBe(-4);
    expect(clockCorrection({ offset: 0.3, uncertainty: 0.1 })).toBe(0);
    expect(clockCorrection({ offset: 2, uncertainty: 3 })).toBe(0);
  });

  it('moves every time of an event, and nothing else', () => {
    const event = { ev: 'extend', id: '1.2', t0: 100, t: 110, exp: 400, ok: true };
    expect(shiftTimes(event, 6)).toEqual({ ev: 'extend', id: '1.2', t0: 94, t: 104, exp: 394, ok: true });
    expect(shiftTimes({ ev: 'stall', child: 2, start: 50, end: 60 }, -1)).toEqual({ ev: 'stall', child: 2, start: 51, end: 61 });
  });
});
