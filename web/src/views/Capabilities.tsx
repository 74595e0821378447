import type { Capabilities } from "../types";

/** What an agent may do beyond reading, shown where its work is shown: a chat or run that
 * may write files or run commands says so plainly. */
export function CapabilityBadges({ caps }: { caps: Capabilities | null | undefined }) {
  const granted = [caps?.write ? "writes files" : null, caps?.exec ? "runs commands" : null].filter(Boolean);
  if (granted.length === 0) {
    return (
      <span class="badge caps read-only" title="Its agents can only read the workspace">
        read-only
      </span>
    );
  }
  return (
    <span class="badge caps granted" title="Granted when it was created: its agents may change the workspace">
      ⚠ {granted.join(" · ")}
    </span>
  );
}
