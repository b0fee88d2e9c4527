// The namespace semantics suite against a real metaserver over gRPC, and in-process.
import { grpcTarget, inProcessTarget } from '../helpers/metaserver';
import { namespaceSuite } from '../helpers/metaserver-suite';

namespaceSuite('metaserver over gRPC', () => grpcTarget({ token: 'suite-token' }));
namespaceSuite('namespace in-process (lmdb)', () => inProcessTarget());
