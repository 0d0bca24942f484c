/** Quotes a value for bash, single-quote style: safe for any byte string. */
export function shq(value: string): string {
  if (/^[A-Za-z0-9_./:=@%+-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A bash array literal: `(a 'b c')`. */
export function shArray(values: readonly string[]): string {
  return `(${values.map(shq).join(' ')})`;
}

/** Indents every non-empty line of a block. */
export function indent(block: string, by = '  '): string {
  return block.split('\n').map(l => (l.length > 0 ? by + l : l)).join('\n');
}

/** Matches registry hosts that are reached over plain HTTP without login (test registries). */
export const LOCAL_REGISTRY_SHELL = `cib_is_local_registry() {
  case "$1" in
    localhost|localhost:*|127.*|'[::1]'|'[::1]':*) return 0 ;;
    *) return 1 ;;
  esac
}`;

/** Matches Amazon ECR private registry hosts, capturing nothing: the region is cut out separately. */
export const ECR_HOST_PATTERN = '^[0-9]{12}\\.dkr\\.ecr(-fips)?\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?$';
