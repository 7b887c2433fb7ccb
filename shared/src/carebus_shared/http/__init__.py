"""HTTP pieces every service's routes share: RFC 9457 problem bodies and error handling."""
