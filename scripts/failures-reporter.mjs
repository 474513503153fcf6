/**
 * A node:test reporter that lists every failed test once the run is over: file, name and the first
 * line of its error. scripts/test.sh prints this list after the TAP output and its summary, so the
 * end of a long log (all that a CI page may show) says which test failed and why.
 */
export default async function* failures(source) {
  const failed = [];
  for await (const ev of source) {
    if (ev.type === 'test:fail') failed.push(ev.data);
  }
  if (failed.length === 0) return;
  yield `# failed tests (${failed.length}, subtests and their parents both listed):\n`;
  for (const d of failed) {
    const err = d.details?.error;
    const why = String(err?.cause?.message ?? err?.message ?? err ?? '').split('\n')[0].slice(0, 300);
    yield `#   ${d.file ?? '?'}: ${d.name}: ${why}\n`;
  }
}
