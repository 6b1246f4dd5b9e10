/**
 * A binary min-heap whose items remember their index, so the lease keeper can reschedule or drop
 * one lease among thousands without scanning them all.
 */
export class IndexedMinHeap {
    constructor(priorityOf) {
        this.priorityOf = priorityOf;
        this.items = [];
    }
    get size() {
        return this.items.length;
    }
    peek() {
        return this.items[0];
    }
    has(item) {
        return item.heapIndex >= 0 && this.items[item.heapIndex] === item;
    }
    /** Adds the item, or moves it if its priority changed. */
    upsert(item) {
        if (this.has(item)) {
            this.siftUp(item.heapIndex);
            this.siftDown(item.heapIndex);
            return;
        }
        item.heapIndex = this.items.length;
        this.items.push(item);
        this.siftUp(item.heapIndex);
    }
    pop() {
        const top = this.items[0];
        if (top !== undefined)
            this.remove(top);
        return top;
    }
    remove(item) {
        if (!this.has(item))
            return;
        const index = item.heapIndex;
        const last = this.items.pop();
        item.heapIndex = -1;
        if (last === item)
            return;
        this.items[index] = last;
        last.heapIndex = index;
        this.siftUp(index);
        this.siftDown(last.heapIndex);
    }
    siftUp(index) {
        const items = this.items;
        while (index > 0) {
            const parent = (index - 1) >> 1;
            if (this.priorityOf(items[parent]) <= this.priorityOf(items[index]))
                return;
            this.swap(index, parent);
            index = parent;
        }
    }
    siftDown(index) {
        const items = this.items;
        for (;;) {
            const left = 2 * index + 1;
            const right = left + 1;
            let smallest = index;
            if (left < items.length && this.priorityOf(items[left]) < this.priorityOf(items[smallest]))
                smallest = left;
            if (right < items.length && this.priorityOf(items[right]) < this.priorityOf(items[smallest]))
                smallest = right;
            if (smallest === index)
                return;
            this.swap(index, smallest);
            index = smallest;
        }
    }
    swap(a, b) {
        const items = this.items;
        [items[a], items[b]] = [items[b], items[a]];
        items[a].heapIndex = a;
        items[b].heapIndex = b;
    }
}
//# sourceMappingURL=indexed-heap.js.map