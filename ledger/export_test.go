package ledger

// ParseAck is parseAck, for the black-box tests.
var ParseAck = parseAck
