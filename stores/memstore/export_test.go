package memstore

// TicketCount returns how many tickets s holds.
func TicketCount(s *TicketStore) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
