package fiberbridge

// StreamsHeld reports how many of subject's stream slots
// (Config.MaxStreamsPerSubject) are taken. It exists for the package's
// external tests, which must know that a slot is held before they probe it.
func (b *Bridge) StreamsHeld(subject string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.streams[subject]
}
