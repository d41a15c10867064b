/**
 * Bounds how often one kind of log line is written: a burst of 100k bad lines
 * must cost counters, not 100k log lines. Pure apart from the clock it is given.
 */
export class LogLimit {
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private windowStart = Number.NEGATIVE_INFINITY;
  private written = 0;
  private suppressed = 0;

  constructor(perWindow: number, windowMs: number, now: () => number = () => performance.now()) {
    this.perWindow = perWindow;
    this.windowMs = windowMs;
    this.now = now;
  }

  /**
   * Whether to write the next line. When a new window opens, `suppressed` says
   * how many lines the previous windows left out (to be logged with this one).
   */
  take(): { write: boolean; suppressed: number } {
    const now = this.now();
    let suppressed = 0;
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.written = 0;
      suppressed = this.suppressed;
      this.suppressed = 0;
    }
    if (this.written < this.perWindow) {
      this.written++;
      return { write: true, suppressed };
    }
    this.suppressed++;
    return { write: false, suppressed: 0 };
  }
}
