// Node sink for MetricsLogger: appends each line to a metrics.jsonl file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseMetricsJsonl, type MetricRecord } from './metrics.js';

/**
 * Returns a sink that appends lines to `file` (created with its directory if missing). Each line is one
 * appendFileSync call (O_APPEND), so a crash can at most truncate the last line, which parseMetricsJsonl
 * skips.
 */
export function jsonlFileSink(file: string): (line: string) => void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  return (line: string) => fs.appendFileSync(file, line + '\n');
}

/** Reads a metrics.jsonl file (empty list when it does not exist yet). */
export function readMetricsFile(file: string): MetricRecord[] {
  if (!fs.existsSync(file)) return [];
  return parseMetricsJsonl(fs.readFileSync(file, 'utf8'), file);
}
