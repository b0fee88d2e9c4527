// Types for npm `epoll` (a watcher thread runs epoll_wait and calls back on the event loop).
declare module 'epoll' {
  export class Epoll {
    constructor(callback: (err: Error | null, fd: number, events: number) => void);
    add(fd: number, events: number): this;
    modify(fd: number, events: number): this;
    remove(fd: number): this;
    close(): void;
    readonly closed: boolean;
    static readonly EPOLLIN: number;
    static readonly EPOLLOUT: number;
    static readonly EPOLLRDHUP: number;
    static readonly EPOLLPRI: number;
    static readonly EPOLLERR: number;
    static readonly EPOLLHUP: number;
    static readonly EPOLLET: number;
    static readonly EPOLLONESHOT: number;
  }
}
